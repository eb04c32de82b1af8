"""Power over an energy window, in bounded space: what the report's power-over-time plots draw.

A window's reads (power samples, or energy-counter updates) become at most
:data:`MAX_TRACE_POINTS` points of (seconds since the window opened, watts) per device. Nothing is
invented: a point is the mean of a run of consecutive power samples, or the energy a counter
counted over a run of update intervals divided by their length (the average power the device
itself integrated). A counter's first update is left out: its energy was counted from an instant
before the window opened. So a counter window with fewer than two updates has an empty trace.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_TRACE_POINTS = 64
# Points are kept to 0.1 ms and 1 mW (NVML's power resolution): finer digits are noise that
# would only lengthen the report.
TIME_DIGITS = 4
POWER_DIGITS = 3

TracePoints = tuple[tuple[float, float], ...]  # (seconds since the window opened, watts)


def _runs(n: int, max_points: int) -> list[range]:
    """``n`` consecutive items in at most ``max_points`` runs of near-equal length, in order."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    count = min(n, max_points)
    bounds = [i * n // count for i in range(count + 1)] if count else [0]
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _point(t_s: float, power_w: float) -> tuple[float, float]:
    return round(t_s, TIME_DIGITS), round(power_w, POWER_DIGITS)


def sampled_trace(
    times_s: Sequence[float],
    power_w: Sequence[float],
    start_s: float,
    max_points: int = MAX_TRACE_POINTS,
) -> TracePoints:
    """Power samples (watts at clock times ``times_s``) as a trace relative to ``start_s``: each
    point is the mean time and mean power of a run of consecutive samples."""
    if len(times_s) != len(power_w):
        raise ValueError("one timestamp per power sample")
    points = []
    for run in _runs(len(times_s), max_points):
        t_s = sum(times_s[i] for i in run) / len(run)
        w = sum(power_w[i] for i in run) / len(run)
        points.append(_point(t_s - start_s, w))
    return tuple(points)


def counter_trace(
    update_times_s: Sequence[float],
    update_j: Sequence[float],
    start_s: float,
    max_points: int = MAX_TRACE_POINTS,
) -> TracePoints:
    """Counter updates as a trace relative to ``start_s``. ``update_j[i]`` is the energy (joules)
    counted at update ``update_times_s[i]``. Each point is the midpoint of a run of intervals
    between updates and their energy over their length; the interval before the first update
    is unknown and left out."""
    if len(update_times_s) != len(update_j):
        raise ValueError("one timestamp per counter update")
    intervals = [
        (update_times_s[i - 1], update_times_s[i], update_j[i])
        for i in range(1, len(update_times_s))
        if update_times_s[i] > update_times_s[i - 1]
    ]
    points = []
    for run in _runs(len(intervals), max_points):
        t0_s, t1_s = intervals[run[0]][0], intervals[run[-1]][1]
        joules = sum(intervals[i][2] for i in run)
        points.append(_point((t0_s + t1_s) / 2 - start_s, joules / (t1_s - t0_s)))
    return tuple(points)
