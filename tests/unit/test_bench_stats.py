"""The benchmarks' ratios between streams of interleaved windows, and the interval of their
median (benchmarks/load.py)."""

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
Window, window_ratios, window_ratio = _load.Window, _load.window_ratios, _load.window_ratio


def _w(stream: str, started: float, ok: int, seconds: float = 1.0) -> object:
    return Window(seconds, ok=ok, stream=stream, started=started)


def test_a_window_is_set_against_the_other_stream_at_the_same_moment() -> None:
    # the machine slows down steadily: b's req/s falls 100 -> 80 between its windows; a's window
    # halfway between them, at 45 req/s, is half of b's 90 there
    windows = [_w("b", 0.0, 100), _w("a", 1.0, 45), _w("b", 2.0, 80)]
    assert window_ratios(windows, "a", "b") == [0.5]
    # nearer the later b window, the later one weighs more: 80 + (60 - 80) * 3/4 = 65
    windows = [_w("b", 0.0, 80), _w("x", 1.0, 1), _w("x", 2.0, 1), _w("a", 3.0, 65), _w("b", 4.0, 60)]
    assert window_ratios(windows, "a", "b") == [1.0]


def test_windows_without_the_other_stream_on_both_sides_have_no_ratio() -> None:
    windows = [_w("a", 0.0, 50), _w("b", 1.0, 100), _w("a", 2.0, 50), _w("b", 3.0, 100), _w("a", 4.0, 70)]
    assert window_ratios(windows, "a", "b") == [0.5]  # only the middle a window is between two b windows
    assert window_ratio(windows, "a", "c") is None
    assert window_ratio([_w("b", 0.0, 0), _w("a", 1.0, 5), _w("b", 2.0, 0)], "a", "b") is None  # b served nothing


def test_the_median_over_windows() -> None:
    windows = [_w("b", float(t), 100) if t % 2 == 0 else _w("a", float(t), a) for t, a in enumerate([0, 90, 0, 120, 0, 95, 0])]
    assert window_ratios(windows, "a", "b") == [0.9, 1.2, 0.95]
    assert window_ratio(windows, "a", "b") == 0.95


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
