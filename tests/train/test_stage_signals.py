"""Ctrl-C during training, in process: the first SIGINT only asks for a save and a stop
at the end of the step; a second one interrupts at once; handlers are put back after.

(The real process with SIGTERM, its exit code and the resume are in test_stage_kills.py.)
"""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace
from typing import Any

import pytest

from secreason.train.interrupt import (
    StageInterrupted,
    StopOnSignal,
    check_finished,
    stop_on_signals,
)


def _control() -> Any:
    return SimpleNamespace(should_save=False, should_training_stop=False)


def test_first_sigint_saves_and_stops_at_step_end_second_interrupts(capsys: Any) -> None:
    before = signal.getsignal(signal.SIGINT)
    stopper = StopOnSignal()
    control = _control()
    with stop_on_signals(stopper):
        stopper.on_step_end(None, None, control)
        assert not control.should_save  # no signal yet: nothing asked
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt mid-step
        assert stopper.received == signal.SIGINT
        stopper.on_step_end(None, None, control)
        assert control.should_save and control.should_training_stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
    err = capsys.readouterr().err
    assert "SIGINT: saving a checkpoint after this step" in err and "SIGINT again" in err


@pytest.mark.parametrize(
    ("received", "step", "max_steps", "code"),
    [
        (None, 3, 6, None),
        (signal.SIGINT, 3, 6, 130),
        (signal.SIGTERM, 2, 6, 143),
        (signal.SIGTERM, 6, 6, None),
    ],
    ids=["no signal", "ctrl-c", "sigterm", "signal on the last step"],
)
def test_an_early_stop_is_an_interruption_not_a_finished_stage(
    received: int | None, step: int, max_steps: int, code: int | None
) -> None:
    stopper = StopOnSignal()
    stopper.received = received
    trainer = SimpleNamespace(state=SimpleNamespace(global_step=step, max_steps=max_steps))
    if code is None:
        check_finished(stopper, trainer, "out")  # the stage exports and marks done
        return
    with pytest.raises(StageInterrupted) as err:
        check_finished(stopper, trainer, "out")
    assert err.value.exit_code == code
    assert f"stopped at step {step} of {max_steps}, saved out/checkpoint-{step}" in str(err.value)
