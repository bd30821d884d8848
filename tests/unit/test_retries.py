import pytest

from litellm_failover_plugin.retries import RetryBudget, RetryPolicy, backoff_s, next_wait

POLICY = RetryPolicy(max_retries=3, base_s=0.5, max_wait_s=4.0, max_total_s=5.0)


def low() -> float:
    return 0.0


def high() -> float:
    return 1.0


def test_backoff_grows_exponentially_and_caps() -> None:
    assert [backoff_s(POLICY, r, high) for r in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_jitter_keeps_at_least_half() -> None:
    assert [backoff_s(POLICY, r, low) for r in range(3)] == [0.25, 0.5, 1.0]


def test_no_retries_by_default() -> None:
    assert next_wait(RetryPolicy(), 0, 0.0, None, None, high) is None


def test_retries_stop_at_max_retries() -> None:
    assert next_wait(POLICY, 2, 0.0, None, None, high) == 2.0
    assert next_wait(POLICY, 3, 0.0, None, None, high) is None


def test_retry_after_wins_when_longer() -> None:
    assert next_wait(POLICY, 0, 0.0, 3.0, None, high) == 3.0


def test_retry_after_longer_than_one_wait_falls_over_instead() -> None:
    assert next_wait(POLICY, 0, 0.0, 30.0, None, high) is None


def test_total_wait_is_capped() -> None:
    assert next_wait(POLICY, 2, 3.5, None, None, high) is None  # 3.5 + 2.0 > 5.0


def test_never_outlasts_the_clients_timeout() -> None:
    assert next_wait(POLICY, 1, 0.0, None, 0.9, high) is None
    assert next_wait(POLICY, 1, 0.0, None, 1.1, high) == 1.0


def test_budget_allows_the_floor_then_the_ratio() -> None:
    budget = RetryBudget(ratio=0.2, min_per_s=0.5, ttl_s=10)  # floor: 5 per 10 s
    now = 100.0
    assert [budget.try_withdraw(now) for _ in range(6)] == [True] * 5 + [False]
    for _ in range(10):
        budget.deposit(now)  # 10 requests: 2 more extra calls allowed
    assert [budget.try_withdraw(now) for _ in range(3)] == [True, True, False]


def test_budget_recovers_as_the_window_moves() -> None:
    budget = RetryBudget(ratio=0.0, min_per_s=0.1, ttl_s=10)  # one extra call per 10 s
    assert budget.try_withdraw(0.0) and not budget.try_withdraw(5.0)
    assert budget.try_withdraw(10.0)


@pytest.mark.parametrize("n", [1, 100])
def test_a_wide_outage_adds_at_most_the_share(n: int) -> None:
    budget = RetryBudget(ratio=0.2, min_per_s=0.0, ttl_s=10)
    extra = 0
    for i in range(n * 10):
        now = i / n  # n requests per second for 10 s, every one wanting a failover
        budget.deposit(now)
        extra += budget.try_withdraw(now)
    assert extra <= 0.2 * n * 10
