"""The attempt loop's decisions (decisions.py, generations.py) with `now` as a number."""

from dataclasses import replace

from litellm_failover_plugin.breaker import (
    CLOSED,
    BreakerConfig,
    Cooldown,
    Signal,
    State,
    Transition,
    record,
    start_probe,
)
from litellm_failover_plugin.decisions import (
    Snapshot,
    cooldown_applies,
    health_scan,
    keys_down,
    next_batch,
    probe_order,
    queue_limit,
    retry_after_s,
    retry_wait,
    stale_cooldowns,
    wake_at,
)
from litellm_failover_plugin.generations import Generations
from litellm_failover_plugin.retries import RetryPolicy
from litellm_failover_plugin.routing import Candidate, Outcome

from .test_routing import plan_for

CFG = BreakerConfig(failure_threshold=1, cooldown_s=10, max_cooldown_s=60)
ROUTE = {"policy": "km", "elements": ["alpha:m", "beta:m"]}


def three() -> list[Candidate]:  # alpha:m/a1, alpha:m/a2, beta:m/b1 (see test_routing.plan_for)
    return list(plan_for(ROUTE).candidates)[:3]


def test_a_litellm_cooldown_is_adopted_by_a_closed_breaker_and_skipped() -> None:
    a1, a2, a3 = three()
    snap = Snapshot()
    adopted = snap.learn([a1, a2, a3], {a1.health_id: Cooldown(100.0, 130.0)}, [CLOSED, CLOSED, CLOSED], now=100.0)
    assert [(h, t.new) for h, t in adopted] == [(a1.health_id, State.OPEN)]
    assert snap.breakers[a1.health_id].open_until == 130.0
    assert snap.unavailable == {a1.deployment_id: Outcome.SKIPPED_COOLDOWN}
    assert snap.next_due == 130.0 and not snap.due


def test_an_open_breaker_due_a_probe_beats_litellms_timer() -> None:
    a1, a2, _ = three()
    opened, _ = record(CLOSED, Signal.FAILURE, 0.0, CFG)  # open until 10
    snap = Snapshot()
    adopted = snap.learn([a1, a2], {a1.health_id: Cooldown(20.0, 50.0)}, [opened, opened], now=20.0)
    assert adopted == []  # an open breaker adopts nothing
    assert snap.due == {a1.health_id, a2.health_id}
    assert snap.unavailable == {}  # both may be probed, LiteLLM's cooldown of a1 notwithstanding


def test_an_open_breaker_not_due_is_skipped_until_its_end() -> None:
    a1, a2, _ = three()
    opened, _ = record(CLOSED, Signal.FAILURE, 0.0, CFG)
    snap = Snapshot()
    snap.learn([a1, a2], {}, [opened, CLOSED], now=5.0)
    assert snap.unavailable == {a1.deployment_id: Outcome.SKIPPED_OPEN}
    assert snap.next_due == 10.0


def test_breakers_off_only_litellms_cooldowns_count() -> None:
    a1, a2, _ = three()
    snap = Snapshot()
    assert snap.learn([a1, a2], {a2.health_id: Cooldown(1.0, 7.0)}, None, now=1.0) == []
    assert snap.unavailable == {a2.deployment_id: Outcome.SKIPPED_COOLDOWN} and not snap.breakers


def test_litellm_cooldowns_from_before_a_keys_last_close_are_stale() -> None:
    """Each worker keeps LiteLLM's cooldowns in its own memory: one set before a probe (in any
    worker) closed the key's shared breaker is stale, to be cleared; a newer one counts."""
    a1, a2, b1 = three()
    by_id = {c.deployment_id: c for c in (a1, a2, b1)}
    opened, _ = record(CLOSED, Signal.FAILURE, 0.0, CFG)
    closed, _ = record(start_probe(opened, 10.0, CFG), Signal.SUCCESS, 10.0, CFG)
    cooling = {a1.deployment_id: Cooldown(5.0, 35.0), a2.deployment_id: Cooldown(12.0, 42.0), b1.deployment_id: Cooldown(5.0, 35.0)}
    breakers = {a1.health_id: closed, a2.health_id: closed, b1.health_id: opened}
    assert stale_cooldowns(cooling, by_id, breakers) == [a1.deployment_id]  # b1's breaker never closed since
    assert stale_cooldowns(cooling, by_id, {}) == []  # breakers not read (off): nothing is stale
    fresh = {i: c for i, c in cooling.items() if i != a1.deployment_id}
    assert keys_down(fresh, by_id) == {a2.health_id: Cooldown(12.0, 42.0), b1.health_id: Cooldown(5.0, 35.0)}


def test_a_keys_cooldown_is_the_latest_of_its_deployments() -> None:
    a1, _, _ = three()
    other_route = replace(a1, deployment_id="other/" + a1.deployment_id)  # same key, another route
    by_id = {a1.deployment_id: a1, other_route.deployment_id: other_route}
    cooling = {a1.deployment_id: Cooldown(1.0, 50.0), other_route.deployment_id: Cooldown(3.0, 20.0)}
    assert keys_down(cooling, by_id) == {a1.health_id: Cooldown(3.0, 50.0)}


def test_reads_grow_threefold() -> None:
    assert next_batch(0, 10_000, 4) == slice(0, 4)
    assert next_batch(4, 10_000, 4) == slice(4, 16)
    assert next_batch(16, 20, 4) == slice(16, 20)


def test_only_a_counted_plain_failure_that_did_not_trip_is_retried() -> None:
    policy = RetryPolicy(max_retries=2, base_s=0.5, max_wait_s=5, max_total_s=10)
    tripped = Transition(State.CLOSED, State.OPEN, "x")
    args = (policy, 0, 0.0, None, None, lambda: 1.0)
    assert retry_wait(Signal.FAILURE, True, None, *args) == 0.5
    assert retry_wait(Signal.FAILURE, False, None, *args) is None  # not listed: moves on or returns
    assert retry_wait(Signal.FAILURE, True, tripped, *args) is None  # the breaker opened: move on
    assert retry_wait(Signal.AUTH, True, None, *args) is None  # a dead key is not retried


def test_the_queue_waits_until_max_wait_or_the_requests_timeout() -> None:
    assert queue_limit(100.0, 20.0, None) == (120.0, "max_wait_s")
    assert queue_limit(100.0, 20.0, 110.0) == (110.0, "the request's timeout")
    assert wake_at(105.0, 100.0, 1.0) == 105.0
    assert wake_at(99.0, 100.0, 1.0) == 101.0  # a due time past: recheck
    assert wake_at(None, 100.0, 2.0) == 102.0


def test_retry_after_of_an_exhausted_error() -> None:
    assert retry_after_s(100.0, None, None, False, CFG) is None
    assert retry_after_s(100.0, None, None, True, CFG) == 1
    assert retry_after_s(100.0, 112.2, None, False, CFG) == 13
    assert retry_after_s(100.0, None, 7.0, False, CFG) == 7  # the upstream's own, passed on
    assert retry_after_s(100.0, None, 1e9, False, CFG) == 60  # capped at max_cooldown_s
    assert retry_after_s(100.0, None, float("inf"), True, CFG) == 1  # unparseable: ignored


def test_a_retired_deployment_goes_once_no_older_request_runs() -> None:
    g = Generations()
    old = g.start()
    g.bump()
    g.retire({"chat/a", "chat/b"})
    assert g.removable(frozenset()) == set()  # a request of the older plans still runs
    assert g.finish(old) is True
    assert g.removable(frozenset({"chat/b"})) == {"chat/a"}  # b is in use again
    assert g.removable(frozenset()) == set()  # forgotten once returned


def test_a_health_round_reads_the_suspects_and_the_next_keys_in_rotation() -> None:
    ids = [f"k{i}" for i in range(10)]
    assert health_scan(ids, {"k3"}, 0, 20) == (ids, 0)  # few keys: every one, every round
    first, at = health_scan(ids, {"k7", "k1"}, 0, 4)
    assert first == ["k0", "k1", "k2", "k3", "k7"] and at == 4  # k1 is in the slice already
    second, at = health_scan(ids, set(), at, 4)
    third, at = health_scan(ids, set(), at, 4)
    assert second == ["k4", "k5", "k6", "k7"] and third == ["k8", "k9", "k0", "k1"] and at == 2
    seen: set[str] = set()
    at = 0
    for _ in range(3):  # ceil(10 / 4) rounds reach every key
        got, at = health_scan(ids, set(), at, 4)
        seen.update(got)
    assert seen == set(ids)


def test_probe_order_takes_the_keys_probed_longest_ago_first() -> None:
    due = ["k0", "k1", "k2", "k3", "k4"]
    assert probe_order(due, {}, 3) == ["k0", "k1", "k2"]  # none probed yet: the keys' order
    # k0..k2 were probed last round: the two never probed come first, then the oldest probe
    assert probe_order(due, {"k0": 5.0, "k1": 4.0, "k2": 5.0}, 3) == ["k3", "k4", "k1"]
    assert probe_order(due, {"k9": 1.0}, 10) == due  # a key not due is not probed


def test_a_litellm_cooldown_applies_only_after_a_failure_its_list_counts() -> None:
    [c] = plan_for({"policy": "m", "elements": [{"element": "alpha:m", "fallback_status_codes": [500, 503]}]}).candidates
    assert cooldown_applies(503, c) and cooldown_applies(None, c)  # listed, or a timeout LiteLLM saw
    assert not cooldown_applies(429, c)  # handed back as is: the deployment is not at fault
    assert not cooldown_applies(404, c)  # a client error never
    assert cooldown_applies(401, c) and cooldown_applies(403, c)  # that key's own failure
