"""One attempt of a route's walk: one candidate called, and retried as its policy allows.

The walk (runner.py) hands each candidate it may call to `attempt`, with the request as a
`Call`. The upstream call is pinned to the candidate's deployment, one attempt one call (an
embedding's client retries nothing; a stream counts as an answer once its first chunk is read).
A failure is classified and reported to the key's breaker, then retried after a wait (within
the retry budget), moved on from, or handed back to the client as is; an answer is recorded in
the request's metadata and its response headers, and a stream handed to its supervisor
(streams.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..breaker import Signal, signal_of
from ..conditions import falls_over
from ..decisions import Snapshot, retry_wait
from ..instrumentation import UpstreamLatency
from ..routing import Candidate, FailoverRun, Outcome, Verdict
from ..streaming import Fault, StreamFailed, stream_failure
from . import adapter, failure_log
from .outcome import local_failure, record
from .streams import Opened, StreamContext, Supervised, open_stream, supports
from .translate import classify, total_tokens

if TYPE_CHECKING:
    from .runner import FailoverRunner

log = logging.getLogger("litellm_failover_plugin")

MOVE_ON = object()  # an attempt that failed over


@dataclass(frozen=True, slots=True)
class Call:
    """One attempt's inputs: the walk it belongs to, the candidate, and the request."""

    run: FailoverRun
    snap: Snapshot
    candidate: Candidate
    original_function: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deadline: float | None
    continuing: StreamContext | None


async def attempt(runner: FailoverRunner, call: Call) -> Any:
    """Call one candidate (retrying it as its policy allows): what the walk returns, or
    MOVE_ON when it failed over. Raises what goes back to the client as is."""
    hid = call.candidate.health_id
    retry, waited = 0, 0.0
    while True:
        await failure_log.settle()  # the last failure was not the outcome: LiteLLM's accounting only
        t0 = runner.clock()
        runner.herd.enter(hid)  # in flight until the call ends (and while a retry of it waits)
        try:
            response, opened = await _call_once(runner, call, t0)
        except asyncio.CancelledError:
            runner.herd.leave(hid)
            raise
        except Exception as exc:
            try:
                wait = await _failed(runner, call, exc, retry, waited)
                if wait is None:
                    return MOVE_ON
                await failure_log.settle()
                await runner.sleep(wait)
            finally:
                runner.herd.leave(hid)
            retry, waited = retry + 1, waited + wait
            if call.candidate.limits and not await runner.reserve(call.candidate, call.snap):  # a retry is a call
                call.run.skipped(call.candidate, Outcome.SKIPPED_LIMIT)
                return MOVE_ON
            continue
        runner.herd.leave(hid)
        return await _served(runner, call, response, opened, t0)


async def _call_once(runner: FailoverRunner, call: Call, t0: float) -> tuple[Any, Opened | None]:
    """One upstream call pinned to the candidate's deployment; a stream is opened (its
    first chunk read) before it counts as an answer."""
    call_kwargs = dict(call.kwargs)
    id = call.candidate.deployment_id
    call_kwargs["model"] = id
    fn = call.original_function
    if getattr(fn, "__name__", "") == "_aembedding":
        client = adapter.embedding_client(runner.router, id)  # one attempt, one call
        if client is not None:
            call_kwargs["client"] = client
    if call.kwargs.get("stream") is True and adapter.reads_first_chunk_in_call():
        response = await _first_chunk_in_call(runner, call, fn(*call.args, **call_kwargs), t0)
    else:
        response = await fn(*call.args, **call_kwargs)
    response = await adapter.set_response_headers(runner.router, response, call.run.plan.name, call_kwargs)
    if call.kwargs.get("stream") is not True:
        return response, None
    if not supports(response, fn):
        return await adapter.first_chunk_or_raise(response), None
    left = call.deadline - t0 if call.deadline is not None else None
    opened = await open_stream(response, runner.stream_timeouts(call.candidate), left, runner._redact)
    opened.latency_ms = (runner.clock() - t0) * 1000
    return response, opened


async def _first_chunk_in_call(runner: FailoverRunner, call: Call, made: Awaitable[Any], t0: float) -> Any:
    """LiteLLM 1.109 waits for a stream's first chunk inside the call: the route's first_chunk_s
    bounds the call then, as open_stream bounds the read after it on earlier releases."""
    left = call.deadline - t0 if call.deadline is not None else None
    limit = runner.stream_timeouts(call.candidate).next_wait(False, left)
    try:
        async with asyncio.timeout(limit) as cm:
            return await made
    except TimeoutError:
        if not cm.expired():
            raise
        fault = Fault.FIRST_CHUNK_TIMEOUT
        raise StreamFailed(stream_failure(fault, 0, after_s=limit), fault, 0) from None


async def _failed(runner: FailoverRunner, call: Call, exc: Exception, retry: int, waited: float) -> float | None:
    """A call failed: how long to wait before retrying the same key, or None to move on.
    Raises the error to hand back (a local failure as the client's 400)."""
    run, candidate, hid = call.run, call.candidate, call.candidate.health_id
    failure = classify(exc, runner._redact)
    if failure.local:  # it never left the proxy: the client's error, no upstream's
        raise local_failure(call.kwargs, run, failure.reason) from exc
    counted = falls_over(failure, candidate.falls_over)
    signal = signal_of(failure, counted)
    if counted:
        runner._observe(hid, False, None)
    tripped = await runner.report(hid, signal, call.snap.breakers.get(hid), failure.retry_after_s)
    policy = replace(runner.retry_policy, max_retries=candidate.max_retries)
    now = runner.clock()
    left = call.deadline - now if call.deadline is not None else None
    wait = retry_wait(signal, counted, tripped, policy, retry, waited, failure.retry_after_s, left, runner.rng)
    if wait is not None and runner.extra_call_allowed(run, pending=1):
        run.retried(candidate, failure)
        return wait
    if run.failed(candidate, failure) is Verdict.RETURN:
        exc.failover_headers = record(call.kwargs, run, candidate)  # type: ignore[attr-defined]
        raise exc
    log.info(
        "failover route=%s deployment=%s key=%s failed (%s): moving on",
        run.plan.name,
        candidate.deployment_id,
        candidate.key,
        failure.label,
    )
    return None


async def _served(runner: FailoverRunner, call: Call, response: Any, opened: Opened | None, t0: float) -> Any:
    """A candidate answered: record it; a stream is handed to its supervisor."""
    run, c = call.run, call.candidate
    if opened is None:  # a supervised stream reports when it ends
        runner._observe(c.health_id, True, (runner.clock() - t0) * 1000)
        await runner.report(c.health_id, Signal.SUCCESS, call.snap.breakers.get(c.health_id))
        await runner.count_tokens(c, total_tokens(response))  # a key with a tpm limit only
    run.succeeded(c)
    if runner.hooks:
        took = opened.latency_ms / 1000 if opened is not None and opened.latency_ms is not None else runner.clock() - t0
        runner.emit(UpstreamLatency(c.route, c.backend, c.model, c.key, took, opened is not None))
    if opened is not None and call.continuing is not None:
        return opened, c
    headers = record(call.kwargs, run, c)
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict):
        extra = hidden.get("additional_headers")
        hidden["additional_headers"] = {**(extra or {}), **headers}
    if opened is not None:
        ctx = StreamContext(run, call.snap, call.original_function, call.args, call.kwargs, call.deadline)
        return Supervised(runner, ctx, opened, c).install()
    return response
