"""Training progress as one readable line per logging step.

transformers prints each log as a raw dict (``{'loss': '2.31', 'grad_norm': ...,
'rewards/cwe_reward/mean': ...}``), dozens of keys wide under GRPO. This callback
prints the same numbers as one line with the step first and the keys a person watches
(loss, learning rate, reward and its per-task parts, completion length, KL) in a fixed
order; everything still goes to the trainer's log history and ``report_to`` unchanged.
It replaces transformers' own printer (the progress bar stays).
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

# (log key, shown as) in the order shown; per-reward means follow the reward.
KEYS = (
    ("loss", "loss"),
    ("eval_loss", "eval_loss"),
    ("grad_norm", "grad"),
    ("learning_rate", "lr"),
    ("reward", "reward"),
    ("reward_std", "±"),
    ("completions/mean_length", "len"),
    ("completions/clipped_ratio", "clipped"),
    ("kl", "kl"),
    ("entropy", "entropy"),
    ("mean_token_accuracy", "token_acc"),
    ("train_loss", "train_loss"),
    ("train_runtime", "seconds"),
)
HIDDEN = ("total_flos", "epoch", "step")


def _number(value: Any) -> str:
    if value is None:  # TRL logs None for a task with no row in this step
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.4g}"


def format_line(logs: dict[str, Any], step: int, max_steps: int) -> str:
    """``step 10/400 (ep 0.32) | loss 2.31 | lr 1.90e-03 | reward 0.41 (cwe 0.5, ...)``."""
    parts = [f"step {step}/{max_steps}" if max_steps > 0 else f"step {step}"]
    if isinstance(logs.get("epoch"), (int, float)):
        parts[0] += f" (ep {logs['epoch']:.2f})"
    for key, label in KEYS:
        if key in logs:
            if key == "reward_std" and "reward" in logs:
                continue  # shown with the reward
            text = f"{label} {_number(logs[key])}"
            parts.append(text)
            if key == "reward":
                if "reward_std" in logs:
                    parts[-1] += f" ± {_number(logs['reward_std'])}"
                per_task = [
                    f"{k.split('/')[1].removesuffix('_reward')} {_number(v)}"
                    for k, v in logs.items()
                    if k.startswith("rewards/") and k.endswith("/mean")
                ]
                if per_task:
                    parts[-1] += f" ({', '.join(per_task)})"
    return " | ".join(parts)


class ProgressLine(TrainerCallback):
    """Print :func:`format_line` for every log on the main process."""

    def __init__(self, write: Any = print) -> None:
        self.write = write

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if logs and state.is_world_process_zero:
            stage = getattr(args, "stage", "train")
            self.write(f"[{stage}] {format_line(logs, state.global_step, state.max_steps)}")


class _QuietProgress(ProgressCallback):
    """transformers' progress bar without its raw-dict printing."""

    def on_log(self, *args: Any, **kwargs: Any) -> None:
        return None


def install(trainer: Any) -> None:
    """Swap the trainer's dict printer for :class:`ProgressLine` (keep the bar)."""
    had_bar = trainer.pop_callback(ProgressCallback) is not None
    trainer.pop_callback(PrinterCallback)
    if had_bar:
        trainer.add_callback(_QuietProgress)
        bar = next(c for c in trainer.callback_handler.callbacks if isinstance(c, _QuietProgress))
        trainer.add_callback(ProgressLine(lambda text: _write(bar, text)))
    else:
        trainer.add_callback(ProgressLine())


def _write(bar: Any, text: str) -> None:
    """Write above the progress bar when there is one."""
    if bar.training_bar is not None:
        bar.training_bar.write(text)
    else:
        print(text)
