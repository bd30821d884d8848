from litellm_failover_plugin.queue import WaitQueue


def test_bounded() -> None:
    q = WaitQueue(max_size=2, release_concurrency=1)
    assert q.push(0, 0.0) and q.push(0, 0.0)
    assert q.push(0, 0.0) is None
    assert len(q) == 2


def test_priority_then_arrival() -> None:
    q = WaitQueue(max_size=10, release_concurrency=1)
    late_low = q.push(5, 0.0)
    first = q.push(1, 1.0)
    second = q.push(1, 2.0)
    assert late_low and first and second
    assert q.may_go(first) and not q.may_go(second) and not q.may_go(late_low)
    q.release(first)
    assert not q.may_go(second)  # the one slot is taken until `first` finishes
    q.finished()
    assert q.may_go(second)


def test_paced_release() -> None:
    q = WaitQueue(max_size=10, release_concurrency=2)
    tickets = [q.push(0, float(i)) for i in range(5)]
    assert [q.may_go(t) for t in tickets if t] == [True, True, False, False, False]
    assert tickets[0] and tickets[1]
    q.release(tickets[0])
    q.release(tickets[1])
    assert q.released == 2
    assert not any(q.may_go(t) for t in tickets[2:] if t)


def test_requeue_keeps_the_place() -> None:
    q = WaitQueue(max_size=10, release_concurrency=1)
    a, b = q.push(0, 0.0), q.push(0, 1.0)
    assert a and b
    q.release(a)
    q.requeue(a)  # still down: back in front of b
    assert q.may_go(a) and not q.may_go(b) and q.released == 0


def test_remove_and_oldest_wait() -> None:
    q = WaitQueue(max_size=10, release_concurrency=1)
    a, b = q.push(0, 10.0), q.push(0, 12.0)
    assert a and b
    assert q.oldest_wait_s(15.0) == 5.0
    q.remove(a)
    q.remove(a)  # twice is harmless
    assert len(q) == 1 and q.may_go(b) and q.oldest_wait_s(15.0) == 3.0
