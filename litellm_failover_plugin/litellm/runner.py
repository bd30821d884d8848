"""The attempt loop, installed on a live `Router`.

Every router call (acompletion, aembedding, atext_completion, ...) goes through
`Router.async_function_with_fallbacks(original_function=<one attempt>, model=..., ...)`.
`install` shadows that method on the router instance: a call for a route name walks the
route's plan, each attempt one call of `original_function` pinned to one deployment id (so
LiteLLM's clients, callbacks, spend logs and cooldowns all see it); any other model name goes
to LiteLLM's own method untouched.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from litellm.router import Router

from ..breaker import Signal, signal_of
from ..conditions import falls_over
from ..config import FailoverSettings
from ..decisions import Snapshot, queue_limit, retry_wait, wake_at
from ..generations import Generations
from ..herd import Herd
from ..instrumentation import AttemptMade, BudgetDenied, Hook, QueueChanged, RequestDone, UpstreamLatency
from ..policies import DYNAMIC
from ..retries import RetryBudget, RetryPolicy
from ..routing import Candidate, FailoverRun, Outcome, RoutePlan, Verdict
from ..scoring import Stats, Weights, rank
from ..state import MemoryStore, StateStore
from ..streaming import Timeouts, timeouts_for
from . import adapter
from .keyhealth import KeyHealth
from .outcome import PRIORITY_KEY, ProxyFailoverExhausted, exhausted, local_failure, priority, record
from .replies import command_reply
from .streams import Opened, StreamContext, Supervised, open_stream, supports
from .translate import Redactor, classify, cost_per_token
from .waiting import Place, QueueTimeout, RouteWaiter, waiters_for

log = logging.getLogger("litellm_failover_plugin")

_EXHAUSTED = object()  # a walk that served nothing
_MOVE_ON = object()  # an attempt that failed over
__all__ = ["PRIORITY_KEY", "FailoverRunner", "ProxyFailoverExhausted", "Snapshot"]


class FailoverRunner(KeyHealth):
    """Stands in for `router.async_function_with_fallbacks` on one router instance; the keys'
    state it reads and changes is KeyHealth's (keyhealth.py)."""

    def __init__(
        self,
        router: Router,
        settings: FailoverSettings,
        plans: Mapping[str, RoutePlan],
        store: StateStore | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ):
        self.router = router
        self.store: StateStore = store if store is not None else MemoryStore()
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.budget: RetryBudget | None = None
        self._redact = Redactor([])
        self._original = router.async_function_with_fallbacks
        self.restore: Callable[[], None] | None = None  # puts the routes' deployments back on the router
        self.stats: dict[str, Stats] = {}  # by health id: this replica's own view, for scores and status
        self.waiters: dict[str, RouteWaiter] = {}
        self.generations = Generations()  # a request keeps the plan it started with
        self.open_streams = 0  # supervised client streams not closed yet (status: no leaks)
        self.herd = Herd()  # this process's calls in flight per key, and the keys whose last call failed
        self.hooks: tuple[Hook, ...] = ()  # instrumentation (instrumentation.py); empty: no event is built
        self._apply(settings, plans)

    def _apply(self, settings: FailoverSettings, plans: Mapping[str, RoutePlan]) -> None:
        self.settings = settings
        self.plans = dict(plans)
        self.breaker = settings.breaker.config()
        self.breaker_on = settings.breaker.enabled
        self.herd.limit = self.breaker.max_in_flight_while_failing if self.breaker_on else 0
        r = settings.retries
        self.retry_policy = RetryPolicy(0, r.base_s, r.max_wait_s, r.max_total_s)
        b = settings.retry_budget
        if b is None:
            self.budget = None
        elif self.budget is None or getattr(self, "_budget_settings", None) != b:  # unchanged: keep its balance
            self.budget = RetryBudget(b.ratio, b.min_per_s, b.ttl_s)
        self._budget_settings = b
        # keys removed by a reload stay redacted: an error about a call made before it may come later
        self._redact = Redactor.for_settings(settings, also=self._redact)
        self.waiters = waiters_for(settings, self.plans, self.waiters, lambda: self.clock())
        self.candidates = {c.deployment_id: c for p in self.plans.values() for c in p.candidates}
        # health id -> the deployment ids of that key, in every route (one breaker, many deployments)
        self.deployments_of: dict[str, list[str]] = {}
        for c in self.candidates.values():
            self.deployments_of.setdefault(c.health_id, []).append(c.deployment_id)
        self.costs = {i: cost_per_token(settings, c) for i, c in self.candidates.items()}
        self.weights = {
            name: Weights(**settings.routes[name].weights.model_dump())
            for name, p in self.plans.items()
            if p.policy in DYNAMIC
        }

    def update(self, settings: FailoverSettings, plans: Mapping[str, RoutePlan]) -> None:
        """Serve new plans from the next request on; requests in flight finish on their own."""
        self._apply(settings, plans)
        self.generations.bump()

    @property
    def deployment_ids(self) -> frozenset[str]:
        """Every deployment the current plans put on the router."""
        return frozenset(i for p in self.plans.values() for i in p.installed_ids)

    def retire(self, ids: Iterable[str]) -> None:
        """Remove deployments no plan uses any more, once no request that might call them runs."""
        self.generations.retire(ids)
        self._remove_retired()

    def _remove_retired(self) -> None:
        for id in self.generations.removable(self.deployment_ids):
            self.router.delete_deployment(id=id)
        for hid in set(self.stats) - set(self.deployments_of):  # keys no route uses any more
            del self.stats[hid]
        self.herd.failing &= set(self.deployments_of)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        reply = command_reply(kwargs)
        if reply is not None:  # a `!/` command was carried out before routing: answer, no upstream call
            return reply
        plan = self.plans.get(kwargs.get("model"))  # type: ignore[arg-type]
        if plan is None:
            return await self._original(*args, **kwargs)
        first = plan.candidates[0].deployment_id if plan.candidates else plan.installed_ids[0]
        if self.restore is not None and not self.router.has_model_id(first):
            log.warning("failover routes: the router lost the routes' deployments (set_model_list?); putting them back")
            self.restore()
        generation = self.generations.start()
        result = "error"
        try:
            response = await self.run(plan, args, kwargs)
            result = "success"
            return response
        except ProxyFailoverExhausted:
            result = "exhausted"
            raise
        except asyncio.CancelledError:
            result = "cancelled"
            raise
        finally:
            if self.hooks:
                self.emit(RequestDone(plan.name, result))
            if self.generations.finish(generation):
                self._remove_retired()

    def ranked(self, plan: RoutePlan) -> RoutePlan:
        """A scored route's candidates by priority, then latency, reliability and cost."""
        c = plan.candidates
        stats = {x.deployment_id: s for x in c if (s := self.stats.get(x.health_id)) is not None}
        order = rank(plan.deployment_ids, c, [x.priority for x in c], stats, self.costs, self.weights[plan.name])
        return replace(plan, candidates=tuple(order))

    def stream_timeouts(self, c: Candidate) -> Timeouts:
        return timeouts_for(self.settings, c.route, c.element_index)

    async def continue_stream(self, ctx: StreamContext, messages: list[dict[str, Any]]) -> tuple[Opened, Candidate] | None:
        """Walk on from the candidate whose stream broke, asking the next one to continue the
        answer; its opened stream, or None when no candidate is left (or may be called)."""
        snap = Snapshot()  # the candidates left are read afresh as the walk reaches them
        ctx.run.unavailable = snap.unavailable
        ctx.run.reread()
        kwargs = {**ctx.kwargs, "messages": messages}
        try:
            got = await self._walk(ctx.run, snap, ctx.original_function, ctx.args, kwargs, ctx.deadline, continuing=ctx)
        except Exception as e:  # the next candidate answered with an error that goes back as is
            log.info("failover stream route=%s: continuation failed: %s", ctx.run.plan.name, type(e).__name__)
            return None
        return None if got is _EXHAUSTED else got

    def _extra_call_allowed(self, run: FailoverRun, pending: int = 0) -> bool:
        """Every upstream call after a request's first spends the retry budget. `pending`: calls
        made but not recorded yet (a retry is decided before its failed call is recorded)."""
        if self.budget is None or run.calls + pending == 0:
            return True
        if self.budget.try_withdraw(self.clock()):
            return True
        run.stop("retry budget exhausted: no more extra upstream calls for now")
        if self.hooks:
            self.emit(BudgetDenied(run.plan.name))
        return False

    async def run(self, plan: RoutePlan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Walk the plan; when every candidate is down and the route has a queue, wait for one
        to come back and walk again (the request's upstream calls count across passes)."""
        original_function = kwargs["original_function"]
        for name in adapter.ROUTER_ONLY_KWARGS:
            kwargs.pop(name, None)
        started = self.clock()
        timeout = kwargs.get("timeout") or kwargs.get("request_timeout")
        deadline = started + float(timeout) if isinstance(timeout, (int, float)) else None
        if self.budget is not None:
            self.budget.deposit(started)
        waiter = self.waiters.get(plan.name)
        place: Place | None = None
        calls_so_far = 0
        try:
            while True:
                walk_plan = self.ranked(plan) if plan.policy in DYNAMIC else plan
                snap = Snapshot()  # read as the walk reaches the candidates
                run = FailoverRun(walk_plan, snap.unavailable, earlier_calls=calls_so_far, known=0)
                response = await self._walk(run, snap, original_function, args, kwargs, deadline)
                if response is not _EXHAUSTED:
                    return response
                calls_so_far = run.calls
                if waiter is None or run.stopped or not plan.candidates:
                    raise self._exhausted(run, kwargs)
                if place is None:  # every candidate is down: wait for one to come back instead of failing
                    place = self._enter(waiter, run, kwargs, snap)
                await self._wait(waiter, place, run, kwargs, snap, deadline)
        finally:
            if place is not None and waiter is not None:
                await waiter.done(place)
                if self.hooks:
                    self.emit(QueueChanged(plan.name, len(waiter.queue), self.clock() - place.ticket.since))

    def _enter(self, waiter: RouteWaiter, run: FailoverRun, kwargs: dict[str, Any], snap: Snapshot) -> Place:
        """Take a place in the route's queue, or raise the exhausted error when it is full."""
        place = waiter.enter(priority(kwargs, waiter.settings.default_priority))
        if self.hooks:
            self.emit(QueueChanged(run.plan.name, len(waiter.queue)))
        if place is None:
            run.stop(f"the queue of route {run.plan.name!r} is full ({waiter.settings.max_size} waiting)")
            raise self._exhausted(run, kwargs, status=503, retry_after=snap.next_due)
        return place

    async def _wait(
        self, waiter: RouteWaiter, place: Place, run: FailoverRun, kwargs: dict[str, Any], snap: Snapshot, deadline: float | None
    ) -> None:
        """Wait in the queue until a candidate may be back; raise the exhausted error at the limit."""
        now = self.clock()
        until, why = queue_limit(place.ticket.since, waiter.settings.max_wait_s, deadline)
        try:
            await waiter.wait(place, wake_at(snap.next_due, now, waiter.settings.recheck_s), until)
        except QueueTimeout:
            waited = self.clock() - place.ticket.since
            run.stop(f"waited {waited:.1f}s in the queue ({why}); every candidate still down")
            raise self._exhausted(run, kwargs, status=503, retry_after=snap.next_due) from None

    def _exhausted(
        self, run: FailoverRun, kwargs: dict[str, Any], status: int | None = None, retry_after: float | None = None
    ) -> ProxyFailoverExhausted:
        return exhausted(run, kwargs, self.breaker, self.clock(), status, retry_after)

    async def _walk(self, run: FailoverRun, *args: Any, **kwargs: Any) -> Any:
        """_walk_plan, telling the hooks about the attempts this walk added."""
        if not self.hooks:
            return await self._walk_plan(run, *args, **kwargs)
        before = len(run.attempts)
        try:
            return await self._walk_plan(run, *args, **kwargs)
        finally:
            for a in run.attempts[before:]:
                self.emit(AttemptMade.of(a.candidate, a.outcome.value))

    async def _walk_plan(
        self,
        run: FailoverRun,
        snap: Snapshot,
        original_function: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline: float | None,
        continuing: StreamContext | None = None,
    ) -> Any:
        """One walk through the plan: the response, or _EXHAUSTED. Raises what goes back as is.
        `continuing`: a stream broke mid-way; return the next one opened, (Opened, Candidate)."""
        async for candidate in self._next_reads(run, snap):
            if not await self._may_call(run, snap, candidate):
                continue
            if not self._extra_call_allowed(run):
                break
            call = _Call(run, snap, candidate, original_function, args, kwargs, deadline, continuing)
            got = await self._attempt(call)
            if got is not _MOVE_ON:
                return got
        return _EXHAUSTED

    async def _may_call(self, run: FailoverRun, snap: Snapshot, candidate: Candidate) -> bool:
        """Whether the walk may call `candidate` now: an open key due a probe needs the probe
        slot; a key whose last call failed takes only a few calls at once (herd.py)."""
        hid = candidate.health_id
        if hid in snap.due:
            if await self.take_probe(hid):
                return True
            run.skipped(candidate, Outcome.SKIPPED_OPEN)
            return False
        if not self.herd.may_call(hid):
            run.skipped(candidate, Outcome.SKIPPED_BUSY)
            return False
        return True

    async def _attempt(self, call: _Call) -> Any:
        """Call one candidate (retrying it as its policy allows): what the walk returns, or
        _MOVE_ON when it failed over. Raises what goes back to the client as is."""
        hid = call.candidate.health_id
        retry, waited = 0, 0.0
        while True:
            t0 = self.clock()
            self.herd.enter(hid)  # in flight until the call ends (and while a retry of it waits)
            try:
                response, opened = await self._call_once(call, t0)
            except asyncio.CancelledError:
                self.herd.leave(hid)
                raise
            except Exception as exc:
                try:
                    wait = await self._failed(call, exc, retry, waited)
                    if wait is None:
                        return _MOVE_ON
                    await self.sleep(wait)
                finally:
                    self.herd.leave(hid)
                retry, waited = retry + 1, waited + wait
                continue
            self.herd.leave(hid)
            return await self._served(call, response, opened, t0)

    async def _call_once(self, call: _Call, t0: float) -> tuple[Any, Opened | None]:
        """One upstream call pinned to the candidate's deployment; a stream is opened (its
        first chunk read) before it counts as an answer."""
        call_kwargs = dict(call.kwargs)
        id = call.candidate.deployment_id
        call_kwargs["model"] = id
        fn = call.original_function
        if getattr(fn, "__name__", "") == "_aembedding":
            client = adapter.embedding_client(self.router, id)  # one attempt, one call
            if client is not None:
                call_kwargs["client"] = client
        response = await fn(*call.args, **call_kwargs)
        response = await adapter.set_response_headers(self.router, response, call.run.plan.name, call_kwargs)
        if call.kwargs.get("stream") is not True:
            return response, None
        if not supports(response, fn):
            return await adapter.first_chunk_or_raise(response), None
        left = call.deadline - t0 if call.deadline is not None else None
        opened = await open_stream(response, self.stream_timeouts(call.candidate), left, self._redact)
        opened.latency_ms = (self.clock() - t0) * 1000
        return response, opened

    async def _failed(self, call: _Call, exc: Exception, retry: int, waited: float) -> float | None:
        """A call failed: how long to wait before retrying the same key, or None to move on.
        Raises the error to hand back (a local failure as the client's 400)."""
        run, candidate, hid = call.run, call.candidate, call.candidate.health_id
        failure = classify(exc, self._redact)
        if failure.local:  # it never left the proxy: the client's error, no upstream's
            raise local_failure(call.kwargs, run, failure.reason) from exc
        counted = falls_over(failure, candidate.falls_over)
        signal = signal_of(failure, counted)
        if counted:
            self._observe(hid, False, None)
        tripped = await self.report(hid, signal, call.snap.breakers.get(hid), failure.retry_after_s)
        policy = replace(self.retry_policy, max_retries=candidate.max_retries)
        now = self.clock()
        left = call.deadline - now if call.deadline is not None else None
        wait = retry_wait(signal, counted, tripped, policy, retry, waited, failure.retry_after_s, left, self.rng)
        if wait is not None and self._extra_call_allowed(run, pending=1):
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

    async def _served(self, call: _Call, response: Any, opened: Opened | None, t0: float) -> Any:
        """A candidate answered: record it; a stream is handed to its supervisor."""
        run, c = call.run, call.candidate
        if opened is None:  # a supervised stream reports when it ends
            self._observe(c.health_id, True, (self.clock() - t0) * 1000)
            await self.report(c.health_id, Signal.SUCCESS, call.snap.breakers.get(c.health_id))
        run.succeeded(c)
        if self.hooks:
            took = opened.latency_ms / 1000 if opened is not None and opened.latency_ms is not None else self.clock() - t0
            self.emit(UpstreamLatency(c.route, c.backend, c.model, c.key, took, opened is not None))
        if opened is not None and call.continuing is not None:
            return opened, c
        headers = record(call.kwargs, run, c)
        hidden = getattr(response, "_hidden_params", None)
        if isinstance(hidden, dict):
            extra = hidden.get("additional_headers")
            hidden["additional_headers"] = {**(extra or {}), **headers}
        if opened is not None:
            ctx = StreamContext(run, call.snap, call.original_function, call.args, call.kwargs, call.deadline)
            return Supervised(self, ctx, opened, c).install()
        return response


@dataclass(frozen=True, slots=True)
class _Call:
    """One attempt's inputs: the walk it belongs to, the candidate, and the request."""

    run: FailoverRun
    snap: Snapshot
    candidate: Candidate
    original_function: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deadline: float | None
    continuing: StreamContext | None
