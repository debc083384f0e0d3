"""Cost of the guard's view of text (``guard_view``), which runs on every request and
every output when a guard is configured: microseconds per call on 1 KB and 64 KB of
ASCII English, English with one curly quote (the non-ASCII path), Russian and Chinese
prose, and a disguised text (look-alikes, Zalgo, fillers in every few words).

Usage: python benchmarks/guard_view.py [--module FILE.py]
(``--module`` times the ``guard_view`` of another file, e.g. an older sanitize.py from
``git show``; each figure is the best of 7 batches, so a loaded machine reads high.)
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable

ENGLISH = "The analyst reviewed the firewall logs and found repeated login failures. "
RUSSIAN = "Аналитик просмотрел журналы межсетевого экрана и нашёл повторные ошибки входа. "
CHINESE = "分析师查看了防火墙日志，发现了多次登录失败。"
DISGUISED = "The аnаlyst rеviеwеd thе ʀᴀɴsᴏᴍ lo\u0336g\u0336s аnd fo\u3164und ехрlоits. "


def _texts(size: int) -> dict[str, str]:
    def fill(unit: str) -> str:
        return (unit * (size // len(unit.encode()) + 1)).encode()[:size].decode(errors="ignore")

    return {
        "ascii English": fill(ENGLISH),
        "English + one curly quote": fill(ENGLISH)[:-3] + "\u2019",
        "Russian": fill(RUSSIAN),
        "Chinese": fill(CHINESE),
        "disguised English": fill(DISGUISED),
    }


def _time(view: Callable[[str], str], text: str) -> float:
    """The best of 7 batches of ~50 ms (a shared machine's load only adds time)."""
    view(text)  # warm (the tables are built on first use)
    best = float("inf")
    for _ in range(7):
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.05:
            view(text)
            runs += 1
        best = min(best, (time.perf_counter() - start) / runs * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", help="another file defining guard_view, to time")
    args = parser.parse_args()
    if args.module:
        spec = importlib.util.spec_from_file_location("other_sanitize", args.module)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        view = module.guard_view
    else:
        from secreason.serve.disguise import guard_view as view
    print("| text | 1 KB (µs) | 64 KB (µs) |\n|---|---|---|")
    small, large = _texts(1024), _texts(65536)
    for name in small:
        print(f"| {name} | {_time(view, small[name]):.1f} | {_time(view, large[name]):.0f} |")


if __name__ == "__main__":
    main()
