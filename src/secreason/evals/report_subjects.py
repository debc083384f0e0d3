"""The report's second PNG: accuracy per subject, per benchmark and protocol.

Why: one accuracy over a benchmark that mixes subjects (SecBench's domains, SecEval's
topics) hides where a model is weak; a bar per subject shows it. Benchmarks report
per-subject accuracy as ``<group>/<subject>`` metrics (``choice.accuracy_by``); this
module draws every such metric whose group is in :data:`GROUPS`, one panel per
benchmark, one bar per protocol, and writes nothing when no benchmark has subjects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secreason.evals.report import PROTOCOL_ORDER

#: metric prefixes that hold accuracy per subject
GROUPS = ("subject", "domain", "topics")
FILE = "report.subjects.png"


def subject_accuracy(bench: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{subject: {protocol: mean accuracy}}`` from a report entry's protocols."""
    out: dict[str, dict[str, float]] = {}
    for protocol, metrics in bench.get("protocols", {}).items():
        for key, stat in metrics.items():
            group, _, subject = key.partition("/")
            if group in GROUPS and subject and (stat or {}).get("mean") is not None:
                out.setdefault(subject, {})[protocol] = float(stat["mean"])
    return dict(sorted(out.items()))


def subject_chart(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.subjects.png`` beside the report; ``{"subjects_png": path}`` or {}."""
    panels = [(b["name"], subject_accuracy(b)) for b in report.get("benchmarks", [])]
    panels = [(name, subjects) for name, subjects in panels if subjects]
    if not panels:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [max(1.6, 0.32 * len(subjects) + 1.0) for _, subjects in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, sum(heights)), squeeze=False)
    for ax, (name, subjects) in zip(axes[:, 0], panels, strict=True):
        protocols = [p for p in PROTOCOL_ORDER if any(p in v for v in subjects.values())]
        width = 0.8 / max(1, len(protocols))
        labels = list(subjects)
        for k, protocol in enumerate(protocols):
            ys = [i + k * width for i in range(len(labels))]
            values = [subjects[s].get(protocol, 0.0) for s in labels]
            ax.barh(ys, values, height=width, label=protocol)
        ax.set_yticks([i + width * (len(protocols) - 1) / 2 for i in range(len(labels))])
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("accuracy")
        ax.set_title(f"{name}: accuracy per subject", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(out_dir) / FILE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"subjects_png": path}
