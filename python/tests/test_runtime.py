"""The GIL is released during long computations, and Ctrl-C (SIGINT) stops them: KeyboardInterrupt
is raised only after the C++ computation has been cancelled and has ended."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import emergent

# 21 × [conv 3×3, relu], gap: the pixel-pair path, long enough to be busy for a while.
DEEP = " ".join(["conv(8, 3x3, padding=circular) relu"] * 21) + " gap dense(1)"


def _slow_inputs(n=4, size=8):
    return np.random.default_rng(0).standard_normal((n, size, size, 1))


def test_gil_is_released_during_a_kernel():
    """A second Python thread runs while C++ computes: it sees the extension's counter of running
    computations above zero, which it could not if the GIL were held for the whole call (the
    counter is only above zero between the call's start and its end). No timing threshold: the
    kernel (78 pairs of 16×16 images through 21 conv layers, ~0.5 s on one thread) only has to
    outlast one scheduling of the watching thread."""
    from emergent import _core
    assert _core._running_computations() == 0
    seen = threading.Event()
    stop = threading.Event()

    def watch():
        while not stop.is_set() and not seen.is_set():
            if _core._running_computations() > 0:
                seen.set()

    t = threading.Thread(target=watch)
    t.start()
    try:
        emergent.kernel(DEEP, _slow_inputs(12, 16), threads=1)
    finally:
        stop.set()
        t.join()
    assert seen.is_set(), "no Python thread ran while the kernel was computing: the GIL was held"


def _interrupt_when_running():
    """SIGINT to this process as soon as a C++ computation has started (the extension's internal
    counter says so): no sleeps, no timing assumptions."""
    from emergent import _core

    def fire():
        while _core._running_computations() == 0:
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    return t


def _long_kernel():
    # 820 pairs of 16×16 images through 21 conv layers: several seconds uninterrupted on one thread
    # (4.6 s on 2026-12-01), far longer than the 20 ms in which Ctrl-C is noticed.
    emergent.kernel(DEEP, _slow_inputs(40, 16), threads=1)


def _long_training():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 8))
    y = rng.standard_normal((16, 1))
    emergent.train_ensemble("dense(512) relu dense(512) relu dense(1)", x, y, x, members=4,
                            steps=10_000_000, learning_rate=0.1, threads=1)


@pytest.mark.parametrize("call", [_long_kernel, _long_training], ids=["kernel", "train_ensemble"])
def test_ctrl_c_stops_the_cpp_computation(call):
    """Ctrl-C cancels the library's computation (emergent/core/cancellation.hpp) and waits for it:
    after KeyboardInterrupt nothing is left running, and the computation ended by cancellation."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs SIGINT on the main thread")
    from emergent import _core
    assert _core._running_computations() == 0
    cancelled = _core._cancelled_computations()
    firing = _interrupt_when_running()
    with pytest.raises(KeyboardInterrupt):
        call()
    firing.join()
    assert _core._running_computations() == 0
    assert _core._cancelled_computations() == cancelled + 1
    # The extension is usable afterwards, and a fresh computation is not cancelled.
    k = emergent.kernel("dense(4) relu dense(1)", np.eye(3), threads=1)
    assert np.isfinite(k.ntk).all() and _core._running_computations() == 0
