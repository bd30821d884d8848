"""The benchmarks' ratios between streams of interleaved windows, and the interval of their
median (benchmarks/load.py)."""

import importlib.util
import statistics
import sys
from pathlib import Path

import pytest

# loaded from its file, so the benchmarks' top-level module names stay off sys.path
_spec = importlib.util.spec_from_file_location("bench_load", Path(__file__).resolve().parents[2] / "benchmarks" / "load.py")
assert _spec is not None and _spec.loader is not None
_load = sys.modules["bench_load"] = importlib.util.module_from_spec(_spec)  # its dataclasses look it up
_spec.loader.exec_module(_load)
median_ci95 = _load.median_ci95
Window, window_ratios, window_ratio, total_ratio = _load.Window, _load.window_ratios, _load.window_ratio, _load.total_ratio


def _w(stream: str, started: float, ok: int, seconds: float = 1.0, cpu_s: float = 0.5, errors: int = 0) -> object:
    return Window(seconds, ok=ok, errors=errors, stream=stream, started=started, cpu_s=cpu_s)


def test_a_window_is_set_against_the_other_stream_at_the_same_moment() -> None:
    # the machine slows down: b's req/s falls 100 -> 81 between its windows; a's window halfway
    # between them, at 45 req/s, is half of b's 90 there (interpolated geometrically)
    windows = [_w("b", 0.0, 100), _w("a", 1.0, 45), _w("b", 2.0, 81)]
    assert window_ratios(windows, "a", "b") == pytest.approx([0.5])
    # nearer the later b window, the later one weighs more: 16 ** (1/4) * 81 ** (3/4) = 54
    windows = [_w("b", 0.0, 16), _w("x", 0.5, 1), _w("x", 1.0, 1), _w("a", 1.5, 54), _w("b", 2.0, 81)]
    assert window_ratios(windows, "a", "b") == pytest.approx([1.0])


def test_windows_are_placed_by_their_midpoint_and_given_in_any_order() -> None:
    # a 3 s window starting at 1 s sits at 2.5 s: between b's windows at 2.5 and 4.5, not 0.5 and 2.5
    windows = [_w("b", 3.0, 50, seconds=3.0), _w("b", 0.0, 100), _w("a", 1.0, 150, seconds=3.0), _w("b", 2.0, 50)]
    assert window_ratios(windows, "a", "b") == pytest.approx([1.0])


def test_windows_without_the_other_stream_on_both_sides_have_no_ratio() -> None:
    windows = [_w("a", 0.0, 50), _w("b", 1.0, 100), _w("a", 2.0, 50), _w("b", 3.0, 100), _w("a", 4.0, 70)]
    assert window_ratios(windows, "a", "b") == pytest.approx([0.5])  # only the middle a window is between two b windows
    assert window_ratio(windows, "a", "c") is None
    far = [_w("b", 0.0, 100), _w("a", 1.0, 50), _w("b", 9.0, 100)]  # b's windows 9 s apart: not the same moment
    assert window_ratios(far, "a", "b") == pytest.approx([])


def test_a_failing_baseline_window_is_left_out_and_a_failing_measured_window_counts() -> None:
    windows = [
        _w("b", 0.0, 100),
        _w("b", 1.0, 10, errors=3),
        _w("a", 2.0, 50),
        _w("b", 3.0, 100),
        _w("a", 4.0, 40, errors=1),
        _w("b", 5.0, 100),
    ]
    # the failing b window is no baseline; the failing a window is measured by what it served
    assert window_ratios(windows, "a", "b") == pytest.approx([0.5, 0.4])
    assert total_ratio(windows, "a", "b") == round(90 / 200, 3)
    assert window_ratio([_w("b", 0.0, 0), _w("a", 1.0, 5), _w("b", 2.0, 0)], "a", "b") is None  # b served nothing


def test_the_median_over_windows_and_the_total() -> None:
    windows = [_w("b", float(t), 100) if t % 2 == 0 else _w("a", float(t), a) for t, a in enumerate([0, 90, 0, 120, 0, 40, 0])]
    assert window_ratios(windows, "a", "b") == pytest.approx([0.9, 1.2, 0.4])
    assert window_ratio(windows, "a", "b") == 0.9  # the slow window does not move the median
    assert total_ratio(windows, "a", "b") == round(250 / 300, 3)  # it counts in the total


def test_requests_per_cpu_second() -> None:
    # same req/s, but a's windows cost the proxy twice the CPU time
    windows = [_w("b", 0.0, 100, cpu_s=0.5), _w("a", 1.0, 100, cpu_s=1.0), _w("b", 2.0, 100, cpu_s=0.5)]
    assert window_ratios(windows, "a", "b") == pytest.approx([1.0])
    assert window_ratios(windows, "a", "b", "cpu") == pytest.approx([0.5])
    assert total_ratio(windows, "a", "b", "cpu") == 0.5


def test_the_interval_holds_the_median_and_reproduces() -> None:
    ratios = [0.887, 0.907, 1.63, 0.922, 0.939, 0.986, 1.02, 0.95, 0.71, 1.1, 0.96, 0.93] * 3
    lo, hi = median_ci95(ratios) or (None, None)
    assert lo is not None and hi is not None
    assert min(ratios) <= lo <= statistics.median(ratios) <= hi <= max(ratios)
    assert median_ci95(ratios) == [lo, hi]  # seeded: the same ratios give the same interval


def test_a_noisier_set_of_ratios_gets_a_wider_interval() -> None:
    quiet = [0.98, 0.99, 1.0, 1.01, 1.02, 0.99, 1.0, 1.01]
    noisy = [0.7, 0.85, 1.0, 1.15, 1.3, 0.8, 1.0, 1.2]
    (ql, qh), (nl, nh) = median_ci95(quiet) or (0, 0), median_ci95(noisy) or (0, 0)
    assert nh - nl > 5 * (qh - ql)


def test_equal_ratios_and_too_few_ratios() -> None:
    assert median_ci95([1.0] * 6) == [1.0, 1.0]
    assert median_ci95([0.9, 1.1, 1.0, 0.95, 1.05]) is None  # five: it would only be [min, max]


def test_the_interval_sees_that_neighbouring_ratios_move_together() -> None:
    # the same values, once in runs of ten alike (drift), once shuffled: the blocks see the runs
    runs = [v for v in (0.9, 1.1, 0.95, 1.05, 1.0, 0.92, 1.08, 0.97, 1.03, 1.0) for _ in range(10)]
    mixed = [runs[(i * 37) % len(runs)] for i in range(len(runs))]
    (rl, rh), (ml, mh) = median_ci95(runs) or (0, 0), median_ci95(mixed) or (0, 0)
    assert rh - rl > mh - ml
