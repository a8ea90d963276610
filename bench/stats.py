"""Latency statistics shared by the benchmarks: nearest-rank percentiles and a p50/p99/max summary."""

from __future__ import annotations

import statistics


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))]


def summary(values: list[float]) -> dict:
    """``{n, p50_ms, p99_ms, max_ms}`` of latencies in milliseconds (``{"n": 0}`` for none)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 3),
        "p99_ms": round(pct(values, 99), 3),
        "max_ms": round(max(values), 3),
    }
