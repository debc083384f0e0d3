"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, stop.

A job scheduler sends SIGTERM before it kills; a person presses Ctrl-C. Either way the
steps since the last checkpoint would be lost (and a kill in the middle of a save tears
that checkpoint). So while a stage trains, the first SIGINT or SIGTERM only raises a
flag; at the end of the current step transformers saves a checkpoint and stops, and the
stage exits with 128 + the signal number, saying which checkpoint the same command
will resume from. A second signal acts at once (the default action), for a step that
takes too long.

Only single-process runs do this: under ``accelerate launch`` each process would stop
at its own step and the collectives would hang, so there the signals keep their
default action and a rerun resumes from the last periodic checkpoint.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from transformers import TrainerCallback

from secreason.train.checkpoints import say

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StageInterrupted(RuntimeError):
    """Training stopped early on a signal; a checkpoint was saved."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StopOnSignal(TrainerCallback):
    """Asks transformers to save and stop at the end of the step a signal arrived in."""

    def __init__(self) -> None:
        self.received: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
        return control


def _single_process() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1


@contextmanager
def stop_on_signals(callback: StopOnSignal) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``callback`` while the block runs (main thread,
    single process only)."""
    if not _single_process() or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if callback.received is not None:
            say(f"{name} again: stopping now, without saving")
            restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        callback.received = signum
        say(f"{name}: saving a checkpoint after this step, then stopping ({name} again: at once)")

    for sig in SIGNALS:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        restore()


def check_finished(callback: StopOnSignal, trainer: Any, output_dir: str) -> None:
    """Raise :class:`StageInterrupted` when a signal stopped training before its end."""
    signum = callback.received
    state = trainer.state
    if signum is None or state.global_step >= state.max_steps:
        return
    name = signal.Signals(signum).name
    raise StageInterrupted(
        f"{name}: stopped at step {state.global_step} of {state.max_steps}, saved "
        f"{output_dir}/checkpoint-{state.global_step}; rerun the same command to continue",
        128 + signum,
    )
