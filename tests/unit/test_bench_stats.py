"""The benchmarks' interval for a median of paired ratios (benchmarks/load.py)."""

import importlib.util
import statistics
import sys
from pathlib import Path

# loaded from its file, so the benchmarks' top-level module names stay off sys.path
_spec = importlib.util.spec_from_file_location("bench_load", Path(__file__).resolve().parents[2] / "benchmarks" / "load.py")
assert _spec is not None and _spec.loader is not None
_load = sys.modules["bench_load"] = importlib.util.module_from_spec(_spec)  # its dataclasses look it up
_spec.loader.exec_module(_load)
median_ci95 = _load.median_ci95


def test_the_interval_holds_the_median_and_reproduces() -> None:
    ratios = [0.887, 0.907, 1.63, 0.922, 0.939, 0.986, 1.02, 0.95, 0.71, 1.1, 0.96, 0.93]
    lo, hi = median_ci95(ratios) or (None, None)
    assert lo is not None and hi is not None
    assert min(ratios) <= lo <= statistics.median(ratios) <= hi <= max(ratios)
    assert median_ci95(ratios) == [lo, hi]  # seeded: the same rounds give the same interval


def test_a_noisier_set_of_rounds_gets_a_wider_interval() -> None:
    quiet = [0.98, 0.99, 1.0, 1.01, 1.02, 0.99, 1.0, 1.01]
    noisy = [0.7, 0.85, 1.0, 1.15, 1.3, 0.8, 1.0, 1.2]
    (ql, qh), (nl, nh) = median_ci95(quiet) or (0, 0), median_ci95(noisy) or (0, 0)
    assert nh - nl > 5 * (qh - ql)


def test_equal_rounds_and_too_few_rounds() -> None:
    assert median_ci95([1.0] * 6) == [1.0, 1.0]
    assert median_ci95([0.9, 1.1, 1.0, 0.95, 1.05]) is None  # five rounds: it would only be [min, max]
