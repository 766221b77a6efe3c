import os
import signal

import pytest

from utils.interrupts import deferred_sigint


def test_ctrl_c_is_held_until_the_block_ends():
    reached_end = False
    with pytest.raises(KeyboardInterrupt):
        with deferred_sigint():
            os.kill(os.getpid(), signal.SIGINT)
            reached_end = True  # the write goes on: no KeyboardInterrupt inside the block
    assert reached_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nothing_happens_without_a_signal():
    with deferred_sigint():
        value = 1
    assert value == 1 and signal.getsignal(signal.SIGINT) is signal.default_int_handler
