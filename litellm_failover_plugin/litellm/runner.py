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
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import litellm
from litellm.proxy._types import ProxyException
from litellm.router import Router

from ..breaker import (
    Access,
    Breaker,
    Signal,
    State,
    Transition,
    access,
    adopt_cooldown,
    cooldown_counts,
    record,
    sane_hold,
    signal_of,
    start_probe,
)
from ..conditions import falls_over
from ..config import FailoverSettings
from ..errors import EXHAUSTED_TYPE, FailoverExhausted
from ..herd import Herd
from ..instrumentation import (
    AttemptMade,
    BreakerSeen,
    BudgetDenied,
    Event,
    Hook,
    QueueChanged,
    RequestDone,
    UpstreamLatency,
)
from ..policies import DYNAMIC
from ..retries import RetryBudget, RetryPolicy, next_wait
from ..routing import Candidate, FailoverRun, Outcome, RoutePlan, Verdict
from ..scoring import Stats, Weights, observe, rank
from ..state import MemoryStore, StateStore
from ..state.base import is_clean
from ..streaming import Timeouts, timeouts_for
from . import adapter, failure_log
from .replies import command_reply
from .streams import Opened, StreamContext, Supervised, open_stream, supports
from .translate import METADATA_KEY, Redactor, classify, response_headers
from .waiting import Place, QueueTimeout, RouteWaiter

log = logging.getLogger("litellm_failover_plugin")

# Router-level retry and fallback settings: a route attempt is exactly one upstream call.
_ROUTER_ONLY_KWARGS = (
    "original_function",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "num_retries",
    "model_group_retry_policy",
    "disable_fallbacks",
    "include_fallback_errors",
)
PRIORITY_KEY = "failover_priority"  # the plugin moves a request's `priority` here (see plugin.py)
_EXHAUSTED = object()
FIRST_READ = 4  # keys whose state a request reads before its first call; each further read: 3x all read so far


@dataclass
class Snapshot:
    """What a walk has read of its candidates' state so far (it reads as it goes: _next_reads)."""

    unavailable: dict[str, Outcome] = field(default_factory=dict)  # by deployment id (what FailoverRun skips)
    breakers: dict[str, Breaker] = field(default_factory=dict)  # by health id: the keys' breakers as read
    due: set[str] = field(default_factory=set)  # health ids of open keys whose single probe may be taken now
    next_due: float | None = None  # when the earliest unavailable candidate read becomes callable again

Step = Callable[[Breaker], tuple[Breaker, "Transition | None"]]


class ProxyFailoverExhausted(FailoverExhausted, ProxyException):
    """FailoverExhausted that the proxy renders as an OpenAI error with its own status."""

    def __init__(self, route: str, run: FailoverRun, headers: dict[str, str], status: int | None = None) -> None:
        FailoverExhausted.__init__(self, route, run.attempts, status or run.exhausted_status(), run.stopped)
        ProxyException.__init__(
            self,
            message=self.message,
            type=EXHAUSTED_TYPE,
            param=None,
            code=self.status_code,
            headers=dict(headers),
        )
        self.failover_headers = headers

    def to_dict(self) -> dict[str, Any]:
        error = self.to_openai_error()["error"]
        assert isinstance(error, dict)
        return error


class FailoverRunner:
    """Stands in for `router.async_function_with_fallbacks` on one router instance."""

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
        self.generation = 0  # bumped by every update; a request keeps the plan it started with
        self._running: Counter[int] = Counter()  # requests in flight, by the generation they started in
        self._retiring: list[tuple[int, frozenset[str]]] = []  # deployments to remove once unused
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
        waiters = {}
        for name in self.plans:
            q = settings.queue_for(name)
            if q is None:
                continue
            kept = self.waiters.get(name)  # a queue that stays keeps the requests waiting in it
            waiters[name] = kept if kept is not None and kept.settings == q else RouteWaiter(name, q, lambda: self.clock())
        self.waiters = waiters
        self.candidates = {c.deployment_id: c for p in self.plans.values() for c in p.candidates}
        # health id -> the deployment ids of that key, in every route (one breaker, many deployments)
        self.deployments_of: dict[str, list[str]] = {}
        for c in self.candidates.values():
            self.deployments_of.setdefault(c.health_id, []).append(c.deployment_id)
        self.costs = {i: _cost_per_token(settings, c) for i, c in self.candidates.items()}
        self.weights = {
            name: Weights(**settings.routes[name].weights.model_dump())
            for name, p in self.plans.items()
            if p.policy in DYNAMIC
        }

    def update(self, settings: FailoverSettings, plans: Mapping[str, RoutePlan]) -> None:
        """Serve new plans from the next request on; requests in flight finish on their own."""
        self._apply(settings, plans)
        self.generation += 1

    @property
    def deployment_ids(self) -> frozenset[str]:
        """Every deployment the current plans put on the router."""
        return frozenset(i for p in self.plans.values() for i in p.installed_ids)

    def retire(self, ids: Iterable[str]) -> None:
        """Remove deployments no plan uses any more, once no request that might call them runs."""
        ids = frozenset(ids)
        if ids:
            self._retiring.append((self.generation, ids))
        self._remove_retired()

    def _remove_retired(self) -> None:
        oldest = min((g for g, n in self._running.items() if n > 0), default=self.generation)
        keep: list[tuple[int, frozenset[str]]] = []
        current = self.deployment_ids
        for gen, ids in self._retiring:
            if oldest < gen:
                keep.append((gen, ids))
                continue
            for id in ids - current:
                self.router.delete_deployment(id=id)
        for hid in set(self.stats) - set(self.deployments_of):  # keys no route uses any more
            del self.stats[hid]
        self.herd.failing &= set(self.deployments_of)
        self._retiring = keep

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
        generation = self.generation
        self._running[generation] += 1
        failures = failure_log.begin(self.router)  # a failed attempt is logged only if it is the outcome
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
            await failures.end(failed=result in ("exhausted", "error"))
            if self.hooks:
                self.emit(RequestDone(plan.name, result))
            self._running[generation] -= 1
            if self._running[generation] <= 0:
                del self._running[generation]
                if self._retiring:
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

    def emit(self, event: Event) -> None:
        """Hand one event to every hook; a hook that raises is logged, never the request's problem."""
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:
                log.exception("failover instrumentation: a hook failed on %s", type(event).__name__)

    def _observe(self, id: str, ok: bool, latency_ms: float | None) -> None:
        self.stats[id] = observe(self.stats.get(id, Stats()), ok, latency_ms, self.clock())

    async def cooling_down(self, ids: list[str]) -> dict[str, float]:
        """LiteLLM's active cooldowns among deployment `ids`: id -> when it ends (epoch seconds)."""
        out: dict[str, float] = {}
        cap = self.clock() + self.breaker.max_cooldown_s
        for i, (until, status) in (await adapter.active_cooldowns(self.router, ids)).items():
            if not cooldown_counts(status):
                await self.clear_cooldown(i)  # LiteLLM cools down on 404s: a client error never takes a key out
                continue
            out[i] = min(until, cap) if math.isfinite(until) else cap  # a Retry-After of years is capped
        return out

    async def keys_cooling_down(self, hids: Iterable[str]) -> dict[str, float]:
        """LiteLLM's cooldowns by key: health id -> when the last cooldown of any of its
        deployments (in any route) ends. LiteLLM cools deployments; the key is what is down."""
        ids = [d for h in hids for d in self.deployments_of.get(h, ())]
        out: dict[str, float] = {}
        for id, until in (await self.cooling_down(ids)).items():
            hid = self.candidates[id].health_id
            out[hid] = max(out.get(hid, until), until)
        return out

    async def _snapshot(self, plan: RoutePlan) -> Snapshot:
        """Every candidate's state at once (what a walk reads bit by bit)."""
        snap = Snapshot()
        await self._read(plan.candidates, snap)
        return snap

    async def _next_reads(self, run: FailoverRun, snap: Snapshot) -> AsyncIterator[Candidate]:
        """run.candidates(), reading the state of the candidates as the walk reaches them: the
        first FIRST_READ before the first call, then 3x as many as read so far each time the
        walk passes them all (so a healthy request reads a few keys whatever the route's size,
        and a long walk over dead keys a few reads). One store read and one LiteLLM cooldown
        lookup each."""
        while True:
            for c in run.candidates():
                yield c
            if not run.paused:
                return
            start = run.known or 0
            batch = run.plan.candidates[start : start + max(FIRST_READ, 3 * start)]
            await self._read(batch, snap)
            run.learned(len(batch))

    async def _read(self, cands: Sequence[Candidate], snap: Snapshot) -> None:
        """Add what to skip among `cands` and why, their keys' breakers as read, which are due a
        probe, and when the earliest unavailable one becomes callable again, to `snap`."""
        hids = [c.health_id for c in cands]
        cooling = await self.keys_cooling_down(hids)
        for c in cands:
            if c.health_id in cooling:
                snap.unavailable[c.deployment_id] = Outcome.SKIPPED_COOLDOWN
        if cooling:
            t = min(cooling.values())
            snap.next_due = t if snap.next_due is None else min(snap.next_due, t)
        if not self.breaker_on:
            return
        now = self.clock()
        for c, b in zip(cands, await self.store.get_many(hids), strict=False):
            hid = c.health_id
            if hid in cooling and b.state is State.CLOSED:
                b = await self.adopt(hid, cooling[hid], now)
            snap.breakers[hid] = b
            verdict = access(b, now)
            if verdict is Access.SKIP:
                snap.unavailable.setdefault(c.deployment_id, Outcome.SKIPPED_OPEN)  # LiteLLM's cooldown, if any, says more
                t = max(b.open_until, b.probe_until)
                snap.next_due = t if snap.next_due is None else min(snap.next_due, t)
            elif verdict is Access.PROBE:
                snap.unavailable.pop(c.deployment_id, None)  # the breaker knows more than LiteLLM's timer
                snap.due.add(hid)
        if self.hooks:  # the gauge follows what any replica did, as read
            for c in cands:
                seen = snap.breakers.get(c.health_id)
                if seen is not None:
                    self.emit(BreakerSeen(c.route, c.backend, c.model, c.key, seen.state.value))

    async def _change(self, id: str, step: Step) -> tuple[Breaker, Transition | None]:
        """Apply one step to a key's breaker (`id`: its health id) atomically in the store; log
        the state change it made, if any."""
        made: list[Transition] = []

        def apply(b: Breaker) -> Breaker:
            new, t = step(b)
            made[:] = [t] if t is not None else []
            return new

        _, new = await self.store.update(id, apply)
        for t in made:
            self.log_transition(id, t)
        return new, made[0] if made else None

    async def adopt(self, id: str, until: float, now: float) -> Breaker:
        """Open a key's closed breaker for as long as LiteLLM cools one of its deployments down."""
        new, _ = await self._change(id, lambda b: adopt_cooldown(b, until, now))
        return new

    async def take_probe(self, id: str) -> bool:
        """Claim the single half-open probe of a key (across routes, and replicas with Redis)."""
        now = self.clock()

        def take(b: Breaker) -> Breaker:
            return start_probe(b, now, self.breaker) if access(b, now) is Access.PROBE else b

        old, new = await self.store.update(id, take)
        taken = new.state is State.HALF_OPEN and new.probe_until != old.probe_until
        if taken:
            self.log_transition(id, Transition(old.state, State.HALF_OPEN, "cooldown over: probing"))
        return taken

    async def report(
        self, id: str, signal: Signal, seen: Breaker | None, retry_after_s: float | None = None
    ) -> Transition | None:
        """Feed one call's outcome to its key's breaker (`id`: the health id); a no-op success
        costs no store write. A recovery clears LiteLLM's cooldowns of every deployment of the key."""
        self.herd.saw(id, failed=signal is not Signal.SUCCESS)
        if not self.breaker_on:
            return None
        if signal is Signal.SUCCESS and seen is not None and is_clean(seen) and self.breaker.failure_rate is None:
            return None
        now = self.clock()
        _, t = await self._change(id, lambda b: record(b, signal, now, self.breaker, retry_after_s))
        if t is not None and t.new is State.CLOSED:
            await self.clear_cooldowns(id)
            await self.recovered(id)
        return t

    def routes_of(self, id: str) -> list[str]:
        """The routes that use a key (`id`: its health id; a deployment id names its own route)."""
        c = self.candidates.get(id)
        if c is not None:  # a deployment id (a notice from a replica of an older version)
            return [c.route]
        return sorted({self.candidates[d].route for d in self.deployments_of.get(id, ())})

    async def recovered(self, id: str, *, tell_others: bool = True) -> None:
        """A key is back (`id`: its health id): wake the queues of every route that uses it
        (on every replica)."""
        for route in self.routes_of(id):
            waiter = self.waiters.get(route)
            if waiter is not None:
                await waiter.recovered()
        publish = getattr(self.store, "publish_recovery", None)
        if tell_others and publish is not None and self.waiters:
            await publish(id)

    async def clear_cooldown(self, id: str) -> None:
        """Take one deployment out of LiteLLM's cooldown (`id`: its deployment id)."""
        await adapter.clear_cooldown(self.router, id)

    async def clear_cooldowns(self, hid: str) -> None:
        """A probe just proved a key alive: LiteLLM's cooldown timers of its deployments, in
        every route, must not keep it out."""
        for id in self.deployments_of.get(hid, ()):
            await self.clear_cooldown(id)

    def log_transition(self, id: str, t: Transition) -> None:
        level = logging.WARNING if t.new is State.OPEN else logging.INFO
        log.log(
            level,
            "failover breaker key=%s routes=%s %s -> %s reason=%s",
            id,
            ",".join(self.routes_of(id)) or "?",
            t.old.value,
            t.new.value,
            t.reason,
        )
        if self.hooks:  # one key, every route that uses it
            for dep in self.deployments_of.get(id, ()):
                c = self.candidates[dep]
                self.emit(BreakerSeen(c.route, c.backend, c.model, c.key, t.new.value))

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
        original_function = kwargs["original_function"]
        for name in _ROUTER_ONLY_KWARGS:
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
                # every candidate is down: wait for one to come back instead of failing
                now = self.clock()
                if place is None:
                    place = waiter.enter(self._priority(kwargs, waiter.settings.default_priority))
                    if self.hooks:
                        self.emit(QueueChanged(plan.name, len(waiter.queue)))
                    if place is None:
                        run.stop(f"the queue of route {plan.name!r} is full ({waiter.settings.max_size} waiting)")
                        raise self._exhausted(run, kwargs, status=503, retry_after=snap.next_due)
                limit = place.ticket.since + waiter.settings.max_wait_s
                until = min(limit, deadline) if deadline is not None else limit
                due = snap.next_due if snap.next_due is not None and snap.next_due > now else None
                await failure_log.settle()
                try:
                    await waiter.wait(place, due or now + waiter.settings.recheck_s, until)
                except QueueTimeout:
                    waited = self.clock() - place.ticket.since
                    why = "max_wait_s" if until == limit else "the request's timeout"
                    run.stop(f"waited {waited:.1f}s in the queue ({why}); every candidate still down")
                    raise self._exhausted(run, kwargs, status=503, retry_after=snap.next_due) from None
        finally:
            if place is not None and waiter is not None:
                await waiter.done(place)
                if self.hooks:
                    self.emit(QueueChanged(plan.name, len(waiter.queue), self.clock() - place.ticket.since))

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
        plan = run.plan
        stream = kwargs.get("stream") is True
        async for candidate in self._next_reads(run, snap):
            id, hid = candidate.deployment_id, candidate.health_id
            if hid in snap.due:
                if not await self.take_probe(hid):
                    run.skipped(candidate, Outcome.SKIPPED_OPEN)
                    continue
            elif not self.herd.may_call(hid):  # it just failed and enough calls to it are in flight
                run.skipped(candidate, Outcome.SKIPPED_BUSY)
                continue
            if not self._extra_call_allowed(run):
                break
            retry, waited = 0, 0.0
            while True:
                call_kwargs = dict(kwargs)
                call_kwargs["model"] = id
                if getattr(original_function, "__name__", "") == "_aembedding":
                    client = adapter.embedding_client(self.router, id)  # one attempt, one call
                    if client is not None:
                        call_kwargs["client"] = client
                t0 = self.clock()
                opened: Opened | None = None
                await failure_log.settle()  # the last failure was not the outcome: LiteLLM's accounting only
                self.herd.enter(hid)  # in flight until the call ends (and while a retry of it waits)
                try:
                    response = await original_function(*args, **call_kwargs)
                    response = await adapter.set_response_headers(self.router, response, plan.name, call_kwargs)
                    if stream and supports(response, original_function):
                        left = deadline - t0 if deadline is not None else None
                        opened = await open_stream(response, self.stream_timeouts(candidate), left, self._redact)
                        opened.latency_ms = (self.clock() - t0) * 1000
                    elif stream:
                        response = await adapter.first_chunk_or_raise(response)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failure = classify(exc, self._redact)
                    if failure.local:  # it never left the proxy: the client's error, no upstream's
                        headers = self._record(kwargs, run, None)
                        raise ProxyException(
                            message=f"invalid request: {failure.reason}",
                            type="invalid_request_error",
                            param=None,
                            code=400,
                            headers=headers,
                        ) from exc
                    counted = falls_over(failure, candidate.falls_over)
                    signal = signal_of(failure, counted)
                    if counted:
                        self._observe(hid, False, None)
                    tripped = await self.report(hid, signal, snap.breakers.get(hid), failure.retry_after_s)
                    if signal is Signal.FAILURE and counted and tripped is None:
                        now = self.clock()
                        policy = replace(self.retry_policy, max_retries=candidate.max_retries)
                        left = deadline - now if deadline is not None else None
                        wait = next_wait(policy, retry, waited, failure.retry_after_s, left, self.rng)
                        if wait is not None and self._extra_call_allowed(run, pending=1):
                            run.retried(candidate, failure)
                            await failure_log.settle()
                            await self.sleep(wait)
                            retry, waited = retry + 1, waited + wait
                            continue
                    if run.failed(candidate, failure) is Verdict.RETURN:
                        headers = self._record(kwargs, run, candidate)
                        exc.failover_headers = headers  # type: ignore[attr-defined]
                        raise
                    log.info(
                        "failover route=%s deployment=%s key=%s failed (%s): moving on",
                        plan.name,
                        id,
                        candidate.key,
                        failure.label,
                    )
                    break
                finally:
                    self.herd.leave(hid)
                if opened is None:  # a supervised stream reports when it ends
                    self._observe(hid, True, (self.clock() - t0) * 1000)
                    await self.report(hid, Signal.SUCCESS, snap.breakers.get(hid))
                run.succeeded(candidate)
                if self.hooks:
                    took = opened.latency_ms / 1000 if opened is not None and opened.latency_ms is not None else self.clock() - t0
                    c = candidate
                    self.emit(UpstreamLatency(c.route, c.backend, c.model, c.key, took, opened is not None))
                if opened is not None and continuing is not None:
                    return opened, candidate
                headers = self._record(kwargs, run, candidate)
                hidden = getattr(response, "_hidden_params", None)
                if isinstance(hidden, dict):
                    extra = hidden.get("additional_headers")
                    hidden["additional_headers"] = {**(extra or {}), **headers}
                if opened is not None:
                    ctx = StreamContext(run, snap, original_function, args, kwargs, deadline)
                    return Supervised(self, ctx, opened, candidate).install()
                return response
        return _EXHAUSTED

    def _exhausted(
        self,
        run: FailoverRun,
        kwargs: dict[str, Any],
        status: int | None = None,
        retry_after: float | None = None,
    ) -> ProxyFailoverExhausted:
        called = [a.candidate for a in run.attempts if a.outcome.called]
        headers = self._record(kwargs, run, called[-1] if called else None)
        now = self.clock()
        last = run.last_failure
        hint = sane_hold(last.retry_after_s if last is not None else None, self.breaker)
        if retry_after is None and hint is not None:
            retry_after = now + hint  # the upstream's own Retry-After, passed on (capped)
        if status is not None or retry_after is not None:
            wait = retry_after - now if retry_after is not None and math.isfinite(retry_after) else 1.0
            seconds = min(max(1, math.ceil(wait)), math.ceil(self.breaker.max_cooldown_s))
            headers = {**headers, "retry-after": str(seconds)}
        return ProxyFailoverExhausted(run.plan.name, run, headers, status)

    @staticmethod
    def _priority(kwargs: dict[str, Any], default: int) -> int:
        """The request's own priority, else its key's or team's metadata, else the route's default."""
        md = kwargs.get("metadata") or kwargs.get("litellm_metadata") or {}
        for value in (
            md.get(PRIORITY_KEY),
            md.get("priority"),
            (md.get("user_api_key_metadata") or {}).get("priority"),
            (md.get("user_api_key_team_metadata") or {}).get("priority"),
        ):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return default

    def _record(self, kwargs: dict[str, Any], run: FailoverRun, served: Candidate | None) -> dict[str, str]:
        """Leave what happened in the request's metadata, where the proxy's hooks read it."""
        headers = response_headers(run.plan.name, served, run.calls)
        info = {"headers": headers, "attempts": [a.to_dict() for a in run.attempts]}
        for bucket in ("metadata", "litellm_metadata"):
            md = kwargs.get(bucket)
            if isinstance(md, dict):
                md[METADATA_KEY] = info
        return headers


def _cost_per_token(settings: FailoverSettings, c: Candidate) -> float | None:
    """Price of one token (input + output): the element's own, else LiteLLM's cost map."""
    element = settings.routes[c.route].elements[c.element_index]
    if element.cost_per_token is not None:
        return element.cost_per_token
    provider = settings.backends[c.backend].provider
    info = litellm.model_cost.get(f"{provider}/{c.model}") or litellm.model_cost.get(c.model) or {}
    prices = [info.get("input_cost_per_token"), info.get("output_cost_per_token")]
    known = [float(p) for p in prices if isinstance(p, (int, float))]
    return sum(known) if known else None
