"""Timing for the asv ``track_*`` benchmarks: two callables timed alternately in one process.

Interleaving the two measurements and keeping the minimum of each makes the
ratio robust to load that comes and goes on a shared machine.
"""

import timeit


def interleaved_times(f, g, *, repeat=5, number_f=1, number_g=1, timer=timeit.default_timer):
    """``(min time per call of f, min time per call of g)`` over ``repeat`` alternating rounds."""
    tf = tg = float("inf")
    for _ in range(repeat):
        tf = min(tf, timeit.timeit(f, number=number_f, timer=timer) / number_f)
        tg = min(tg, timeit.timeit(g, number=number_g, timer=timer) / number_g)
    return tf, tg


def interleaved_ratio(f, g, **kwargs):
    """``min time(f) / min time(g)``; keywords as :func:`interleaved_times`."""
    tf, tg = interleaved_times(f, g, **kwargs)
    return tf / tg
