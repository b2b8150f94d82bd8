"""runtime.jobs.interrupts: signals become one exception, and `held()` delays them past bookkeeping."""

from __future__ import annotations

import os
import signal

import pytest

from uda_trt.runtime.jobs.interrupts import Interrupted, held, stop_on_signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_inside_stop_on_signals_raises_interrupted_with_the_shell_exit_code(signum):
    with pytest.raises(Interrupted) as caught, stop_on_signals():
        os.kill(os.getpid(), signum)
    assert caught.value.exit_code == 128 + signum


def test_held_block_runs_to_its_end_before_the_signal_takes_effect():
    steps = []
    with pytest.raises(Interrupted) as caught, stop_on_signals():
        with held():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("written")
            with held():  # nested: the outermost block decides
                steps.append("journalled")
            steps.append("after the inner block")
        steps.append("after the held block")  # never reached: the held signal is raised as the block ends
    assert steps == ["written", "journalled", "after the inner block"]
    assert caught.value.signum == signal.SIGTERM


def test_a_held_signal_does_not_outlive_stop_on_signals():
    """A held block that ends with an error keeps its signal pending; leaving stop_on_signals forgets it."""
    with pytest.raises(ValueError), stop_on_signals(), held():
        os.kill(os.getpid(), signal.SIGINT)
        raise ValueError("the block failed")
    with held():
        pass  # would raise Interrupted if the signal had been kept
