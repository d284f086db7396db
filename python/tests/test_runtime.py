"""The GIL is released during long computations, and Ctrl-C (SIGINT) interrupts them."""
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
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        before = counter[0]
        emergent.kernel(DEEP, _slow_inputs(), threads=1)
        during = counter[0] - before
    finally:
        stop.set()
        t.join()
    # With the GIL held the spinning thread could not run at all while C++ computes; released,
    # it runs ~1e6 iterations per second.
    assert during > 10_000


def test_ctrl_c_interrupts_a_long_kernel():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs SIGINT on the main thread")
    x = _slow_inputs(6, 8)
    t0 = time.perf_counter()
    emergent.kernel(DEEP, x, threads=1)
    uninterrupted = time.perf_counter() - t0
    # The same call again, with SIGINT after a tenth of its duration: KeyboardInterrupt must come
    # well before the computation could have finished (had the GIL stayed released without
    # polling for signals, it would only be raised after the full call).
    timer = threading.Timer(uninterrupted / 10, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        emergent.kernel(DEEP, x, threads=1)
    interrupted = time.perf_counter() - t0
    timer.cancel()
    assert interrupted < 0.6 * uninterrupted
