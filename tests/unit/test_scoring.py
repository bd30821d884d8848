import pytest

from litellm_failover_plugin.scoring import RANK_STALE_MAX_S, Stats, Weights, observe, rank, ranking_fresh, score


def test_ewma_latency_and_success_rate() -> None:
    s = observe(Stats(), True, 100.0, now=1.0)
    s = observe(s, True, 200.0, now=2.0)
    assert s.latency_ms == 120.0 and s.success_rate == 1.0 and s.calls == 2
    s = observe(s, False, None, now=3.0)
    assert s.latency_ms == 120.0 and s.success_rate == 0.8 and s.last_at == 3.0


def test_priority_comes_first() -> None:
    stats = {"slow": Stats(latency_ms=900.0, success_rate=1.0), "fast": Stats(latency_ms=10.0, success_rate=1.0)}
    assert rank(["slow", "fast"], ["slow", "fast"], [0, 1], stats, {}, Weights()) == ["slow", "fast"]
    assert rank(["slow", "fast"], ["slow", "fast"], [0, 0], stats, {}, Weights()) == ["fast", "slow"]


def test_reliability_and_cost_weigh_in() -> None:
    stats = {"a": Stats(latency_ms=100.0, success_rate=0.5), "b": Stats(latency_ms=120.0, success_rate=1.0)}
    assert rank(["a", "b"], ["a", "b"], [0, 0], stats, {}, Weights()) == ["b", "a"]
    costs = {"a": 1e-6, "b": 30e-6}
    only_cost = Weights(latency=0, reliability=0, cost=1)
    assert rank(["a", "b"], ["a", "b"], [0, 0], stats, costs, only_cost) == ["a", "b"]


def test_unknown_candidates_get_their_chance_and_ties_keep_order() -> None:
    stats = {"seen": Stats(latency_ms=50.0, success_rate=1.0)}
    assert rank(["seen", "new"], ["seen", "new"], [0, 0], stats, {}, Weights()) == ["new", "seen"]
    assert rank(["x", "y", "z"], ["x", "y", "z"], [0, 0, 0], {}, {}, Weights()) == ["x", "y", "z"]


def test_score_is_scaled_to_the_worst() -> None:
    w = Weights(latency=1, reliability=1, cost=1)
    assert score(Stats(latency_ms=50.0, success_rate=0.9), 2.0, 100.0, 4.0, w) == pytest.approx(0.5 + 0.1 + 0.5)


def test_cost_is_scaled_against_the_routes_own_candidates() -> None:
    """`costs` holds every route's candidates: a dear model in another route must not make this
    route's price differences vanish (it did: the worst cost was taken over every route)."""
    stats = {"a": Stats(calls=5, latency_ms=10.0, success_rate=1.0), "b": Stats(calls=5, latency_ms=12.0, success_rate=1.0)}
    w = Weights(latency=1.0, reliability=1.0, cost=1.0)
    own = {"a": 2.0, "b": 1.0}
    assert rank(["a", "b"], ["a", "b"], [0, 0], stats, own, w) == ["b", "a"]  # b: 1 + 0.5 beats a: 0.83 + 1
    with_other_route = {**own, "other-route/dear": 1000.0}
    assert rank(["a", "b"], ["a", "b"], [0, 0], stats, with_other_route, w) == ["b", "a"]


def test_a_ranking_serves_for_fifty_times_what_it_took() -> None:
    assert ranking_fresh(ranked_at=100.0, took_s=0.005, now=100.249)  # 10,000 keys: ~5 ms, kept 0.25 s
    assert not ranking_fresh(ranked_at=100.0, took_s=0.005, now=100.251)
    assert ranking_fresh(ranked_at=100.0, took_s=0.00001, now=100.0004)  # 10 keys: ~10 us, kept 0.5 ms
    assert not ranking_fresh(ranked_at=100.0, took_s=0.00001, now=100.0006)


def test_a_ranking_never_serves_past_its_cap_nor_when_time_ran_backwards() -> None:
    assert not ranking_fresh(ranked_at=100.0, took_s=10.0, now=100.0 + RANK_STALE_MAX_S)  # a pause inflated `took`
    assert not ranking_fresh(ranked_at=100.0, took_s=0.005, now=99.0)  # the wall clock was set back
    assert not ranking_fresh(ranked_at=100.0, took_s=0.0, now=100.0)  # a clock that did not move: rank again
