"""Data: synthesize verifiable items, teacher traces, dedup, decontaminate, mix, card.

The two entry points the training demo uses are re-exported here:
``make_demo_items(n_per_task, seed) -> (train, heldout)`` and
``template_trace(sample) -> str``.
"""

from secreason.data.demo import demo_corpus, make_demo_items
from secreason.data.template_teacher import template_trace

__all__ = ["demo_corpus", "make_demo_items", "template_trace"]
