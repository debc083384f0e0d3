"""The demo over several seeds: every seed's RL gain over SFT and its interval.

One seed's gain could be luck; this repeats the whole demo (data split, model init,
SFT, RL, evaluation all reseeded) and prints each seed's figures, side by side. It may
take longer than 10 minutes (about one demo per seed). Finished seeds are skipped on a
rerun (the demo resumes).

Usage: ``python benchmarks/demo_seeds.py [--seeds 0 1 2] [--out runs/demo-seeds] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/demo-seeds"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-format-penalty", action="store_true")
    args = parser.parse_args()

    from secreason.train.demo import DemoConfig, run_demo

    rows = []
    for seed in args.seeds:
        make = DemoConfig.quick if args.quick else DemoConfig
        config = make(seed=seed, format_penalty=not args.no_format_penalty)
        start = time.perf_counter()
        report = run_demo(config, args.out / f"seed-{seed}")
        summary = json.loads((report / "summary.json").read_text())
        rows.append((seed, summary, time.perf_counter() - start))

    print()
    print(
        "| seed | SFT format-valid | SFT sampled | RL sampled | gain [95% CI] | beyond CI | "
        "SFT greedy | RL greedy | greedy gain [95% CI] | demo s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seed, s, _ in rows:
        g, gg = s["gain"]["sampled"], s["gain"]["greedy"]
        print(
            f"| {seed} | {100 * s['sft_format_valid']:.1f}% | {g['mean_a']:.3f} | "
            f"{g['mean_b']:.3f} | {g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}] | "
            f"{'yes' if g['significant'] else 'NO'} | {gg['mean_a']:.3f} | {gg['mean_b']:.3f} | "
            f"{gg['gain']:+.3f} [{gg['low']:+.3f}, {gg['high']:+.3f}] | "
            f"{sum(s['times'].values()):.0f} |"
        )
    n = sum(s["gain"]["sampled"]["significant"] for _, s, _ in rows)
    print(
        f"\nseeds with a sampled gain beyond the interval: {n} of {len(rows)} "
        f"(n = {rows[0][1]['gain']['sampled']['n']} held-out items each)"
    )


if __name__ == "__main__":
    main()
