"""Herd control as plain bookkeeping: who may call a key whose last call failed."""

from litellm_failover_plugin.herd import Herd, may_call


def test_a_key_in_good_standing_is_never_limited() -> None:
    assert may_call(failing=False, in_flight=10_000, limit=1)


def test_a_failing_key_takes_at_most_limit_calls_at_once() -> None:
    assert may_call(failing=True, in_flight=1, limit=2)
    assert not may_call(failing=True, in_flight=2, limit=2)


def test_limit_zero_turns_it_off() -> None:
    assert may_call(failing=True, in_flight=5, limit=0)


def test_a_failure_limits_the_key_and_a_success_ends_it() -> None:
    herd = Herd(limit=1)
    herd.enter("k")
    herd.enter("k")
    assert herd.may_call("k")  # nothing failed yet: calls are not limited
    herd.saw("k", failed=True)
    assert not herd.may_call("k")  # two in flight, limit one
    herd.leave("k")
    assert not herd.may_call("k")
    herd.leave("k")
    assert herd.may_call("k") and herd.in_flight == {}
    herd.enter("k")
    assert not herd.may_call("k")
    herd.saw("k", failed=False)
    assert herd.may_call("k") and herd.may_call("other")
