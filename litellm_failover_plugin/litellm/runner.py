"""The attempt loop, installed on a live `Router`.

Every router call (acompletion, aembedding, atext_completion, ...) goes through
`Router.async_function_with_fallbacks(original_function=<one attempt>, model=..., ...)`.
`install` shadows that method on the router instance: a call for a route name walks the
route's plan, each attempt one call of `original_function` pinned to one deployment id (so
LiteLLM's clients, callbacks, spend logs and cooldowns all see it); any other model name goes
to LiteLLM's own method untouched.

This module is the request's side: the walk through the plan, the route's queue when every
candidate is down, LiteLLM's fallbacks after the route. One candidate's attempt (its call,
retries and outcome) is attempts.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from litellm.router import Router

from ..config import FailoverSettings
from ..decisions import Snapshot, queue_limit, wake_at
from ..generations import Generations
from ..herd import Herd
from ..instrumentation import AttemptMade, BudgetDenied, Hook, QueueChanged, RequestDone
from ..policies import DYNAMIC
from ..retries import RetryBudget, RetryPolicy
from ..routing import Attempt, Candidate, FailoverRun, Outcome, RoutePlan, front_id
from ..scoring import Stats, Weights, rank, ranking_fresh
from ..state import MemoryStore, StateStore
from ..streaming import Timeouts, timeouts_for
from . import adapter, failure_log, fallbacks
from .attempts import MOVE_ON, Call, attempt
from .clients import ClientLeft
from .keyhealth import KeyHealth
from .outcome import PRIORITY_KEY, ProxyFailoverExhausted, exhausted, priority
from .replies import command_reply
from .streams import Opened, StreamContext
from .translate import Redactor, cost_per_token
from .waiting import Place, QueueTimeout, RouteWaiter, waiters_for

log = logging.getLogger("litellm_failover_plugin")

_EXHAUSTED = object()  # a walk that served nothing
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
        self.suspects: set[str] = set()  # keys seen failing or not closed here (health checks read them each round)
        self.waiters: dict[str, RouteWaiter] = {}
        self.generations = Generations()  # a request keeps the plan it started with
        self.open_streams = 0  # supervised client streams not closed yet (status: no leaks)
        self.herd = Herd()  # this process's calls in flight per key, and the keys whose last call failed
        self.hooks: tuple[Hook, ...] = ()  # instrumentation (instrumentation.py); empty: no event is built
        self.gate: Callable[[Mapping[str, Any]], None] | None = None  # raises if a route request must be refused
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
        # route -> (the plan ranked, its ranking, when, how long ranking it took)
        self._rankings: dict[str, tuple[RoutePlan, RoutePlan, float, float]] = {}
        self.weights = {
            name: Weights(**settings.routes[name].weights.model_dump())
            for name, p in self.plans.items()
            if p.policy in DYNAMIC
        }

    def take_over(self, old: FailoverRunner) -> None:
        """The runner of a rebuilt router goes on from what the old one knew of this process's
        keys: their scores, the suspects health checks read first, the failing keys and the calls
        in flight (one herd: the old runner's requests finish on it), the retry budget's balance,
        and the queues with the requests waiting in them (a recovery this runner sees releases them)."""
        self.waiters = waiters_for(self.settings, self.plans, old.waiters, lambda: self.clock())
        self.stats, self.suspects = dict(old.stats), set(old.suspects)
        old.herd.limit, self.herd = self.herd.limit, old.herd
        if old.budget is not None and old._budget_settings == self._budget_settings:
            self.budget = old.budget
        self._forget_unused_keys()

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
        self._forget_unused_keys()

    def _forget_unused_keys(self) -> None:
        """What this process knows of keys no route uses any more goes."""
        keys = set(self.deployments_of)
        for hid in set(self.stats) - keys:
            del self.stats[hid]
        self.herd.failing &= keys
        self.suspects &= keys

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        reply = command_reply(kwargs)
        if reply is not None:  # a `!/` command was carried out before routing: answer, no upstream call
            return reply
        plan = self.plans.get(kwargs.get("model"))  # type: ignore[arg-type]
        if plan is not None and adapter.repicks(kwargs):  # LiteLLM picking again inside a route it just walked
            raise adapter.walked_already(plan.name)
        call = self._original(*args, **kwargs) if plan is None else self._route(plan, args, kwargs)
        return await fallbacks.observed(str(kwargs.get("model")), call)  # noted when a route's fallback hop

    async def _route(self, plan: RoutePlan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Walk the route; when it fails, LiteLLM's fallbacks (fallbacks.py) run after it."""
        if self.gate is not None:  # the proxy's first-request checks (selfcheck.py)
            self.gate(kwargs)
        if self.restore is not None and not self.router.has_model_id(front_id(plan.name)):
            log.warning("failover routes: the router lost the routes' deployments (set_model_list?); putting them back")
            self.restore()
        generation = self.generations.start()
        failures = failure_log.begin(self.router)  # a failed attempt is logged only if it is the outcome
        result = "error"
        as_called = dict(kwargs)  # run() drops the router's fallback settings; LiteLLM's fallbacks need them
        try:
            try:
                response = await self.run(plan, args, kwargs)
                result = "success"
                return response
            except ClientLeft:
                raise
            except Exception as e:  # the queue, if any, has given up: LiteLLM's fallbacks, if any, come next
                result = "exhausted" if isinstance(e, ProxyFailoverExhausted) else "error"
                response = await fallbacks.after_route(self.router, e, args, as_called)
                result = "fallback"
                return response
        except (asyncio.CancelledError, ClientLeft):
            result = "cancelled"
            raise
        finally:
            await failures.end(failed=result in ("exhausted", "error"))
            if self.hooks:
                self.emit(RequestDone(plan.name, result))
            if self.generations.finish(generation):
                self._remove_retired()

    def ranked(self, plan: RoutePlan) -> RoutePlan:
        """A scored route's candidates by priority, then latency, reliability and cost: the last
        ranking while it is fresh (scoring.ranking_fresh), else a new one."""
        now = self.clock()
        last = self._rankings.get(plan.name)
        if last is not None and last[0] is plan and ranking_fresh(last[2], last[3], now):
            return last[1]
        c = plan.candidates
        stats = {x.deployment_id: s for x in c if (s := self.stats.get(x.health_id)) is not None}
        order = rank(plan.deployment_ids, c, [x.priority for x in c], stats, self.costs, self.weights[plan.name])
        ranked = replace(plan, candidates=tuple(order))
        self._rankings[plan.name] = (plan, ranked, now, self.clock() - now)
        return ranked

    def stream_timeouts(self, c: Candidate) -> Timeouts:
        return timeouts_for(self.settings, c.route, c.element_index)

    async def continue_stream(self, ctx: StreamContext) -> tuple[Opened, Candidate] | None:
        """Walk on from the candidate whose stream broke, asking the next one to continue the
        answer (each in the form it takes: attempts.py); its opened stream, or None when no
        candidate is left (or may be called)."""
        snap = Snapshot()  # the candidates left are read afresh as the walk reaches them
        ctx.run.unavailable = snap.unavailable
        ctx.run.reread()
        try:
            got = await self._walk(ctx.run, snap, ctx.original_function, ctx.args, ctx.kwargs, ctx.deadline, continuing=ctx)
        except Exception as e:  # the next candidate answered with an error that goes back as is
            log.info("failover stream route=%s: continuation failed: %s", ctx.run.plan.name, type(e).__name__)
            return None
        return None if got is _EXHAUSTED else got

    def extra_call_allowed(self, run: FailoverRun, pending: int = 0) -> bool:
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
        earlier: tuple[Attempt, ...] = ()  # this request's attempts in earlier passes: its error lists them all
        try:
            while True:
                walk_plan = self.ranked(plan) if plan.policy in DYNAMIC else plan
                snap = Snapshot()  # read as the walk reaches the candidates
                run = FailoverRun(walk_plan, snap.unavailable, earlier=earlier, known=0)
                response = await self._walk(run, snap, original_function, args, kwargs, deadline)
                if response is not _EXHAUSTED:
                    return response
                # the calls of every pass; skips of the last pass only (a long wait re-walks a route of dead keys many times)
                earlier = tuple(a for a in run.history if a.outcome.called)
                if waiter is None or run.stopped or not plan.candidates:
                    # no call made (every candidate open, cooling down or at its limit): say when one is back
                    nothing_called = not any(a.outcome.called for a in run.attempts)
                    raise self._exhausted(run, kwargs, retry_after=snap.next_due if run.limited or nothing_called else None)
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
        await failure_log.settle()
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
        # closed here, not left to the event loop's finaliser (a thread-safe wake-up per request)
        async with contextlib.aclosing(self._next_reads(run, snap)) as reads:
            async for candidate in reads:
                if not await self._may_call(run, snap, candidate):
                    continue
                if not self.extra_call_allowed(run):
                    await self.release(candidate, snap)
                    break
                call = Call(run, snap, candidate, original_function, args, kwargs, deadline, continuing)
                got = await attempt(self, call)
                if got is not MOVE_ON:
                    return got
        return _EXHAUSTED

    async def _may_call(self, run: FailoverRun, snap: Snapshot, candidate: Candidate) -> bool:
        """Whether the walk may call `candidate` now: a key whose last call failed takes only a
        few calls at once (herd.py); a key with an rpm limit needs a slot in the current minute
        (limits.py); an open key due a probe needs the probe slot."""
        hid = candidate.health_id
        if hid not in snap.due and not self.herd.may_call(hid):
            run.skipped(candidate, Outcome.SKIPPED_BUSY)
            return False
        if candidate.limits and not await self.reserve(candidate, snap):
            run.skipped(candidate, Outcome.SKIPPED_LIMIT)
            return False
        if hid in snap.due and not await self.take_probe(hid):
            await self.release(candidate, snap)
            run.skipped(candidate, Outcome.SKIPPED_OPEN)
            return False
        return True
