"""The keys' health as one process reads and changes it (the runner's I/O on state).

A key (backend:model/key, its health id) has one breaker in the state store and one stats
record, shared by every route that uses it; LiteLLM cools down deployments (one per route
element and key), so a key is down while any of its deployments is. A walk reads the state of
the candidates it reaches (`_next_reads`); what to make of it is decided in the core
(decisions.Snapshot.learn), with the rate-limit counters of the keys that have limits
(Snapshot.limited); a call to such a key reserves its slot first (`reserve`), and its answer's
tokens are counted (`count_tokens`); calls report their outcome here (`report`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from litellm.router import Router

from ..breaker import (
    Access,
    Breaker,
    BreakerConfig,
    Cooldown,
    Signal,
    State,
    Transition,
    access,
    adopt_cooldown,
    record,
    settled,
    start_probe,
)
from ..decisions import Snapshot, cooldown_applies, keys_down, next_batch, stale_cooldowns
from ..herd import Herd
from ..instrumentation import BreakerSeen, Event, Hook
from ..limits import Usage, admitted, counter_keys, ttl_s, window_end, window_of
from ..routing import Candidate, FailoverRun
from ..scoring import Stats, observe
from ..state import StateStore
from . import adapter

if TYPE_CHECKING:
    from .waiting import RouteWaiter

log = logging.getLogger("litellm_failover_plugin")
FIRST_READ = 4  # keys whose state a request reads before its first call; each further read: 3x all read so far

Step = Callable[[Breaker], tuple[Breaker, "Transition | None"]]


class KeyHealth:
    """Breakers, LiteLLM cooldowns, stats and herd of the keys of the runner's routes."""

    router: Router
    store: StateStore
    clock: Callable[[], float]
    breaker: BreakerConfig
    breaker_on: bool
    candidates: dict[str, Candidate]  # by deployment id
    deployments_of: dict[str, list[str]]  # health id -> its deployment ids, in every route
    stats: dict[str, Stats]  # by health id: this replica's own view, for scores and status
    suspects: set[str]  # health ids this process saw fail or read not closed: health checks read them every round
    herd: Herd
    hooks: tuple[Hook, ...]
    waiters: dict[str, RouteWaiter]

    def emit(self, event: Event) -> None:
        """Hand one event to every hook; a hook that raises is logged, never the request's problem."""
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:
                log.exception("failover instrumentation: a hook failed on %s", type(event).__name__)

    def _observe(self, id: str, ok: bool, latency_ms: float | None) -> None:
        self.stats[id] = observe(self.stats.get(id, Stats()), ok, latency_ms, self.clock())

    async def cooling_down(self, ids: list[str], breakers: Mapping[str, Breaker] | None = None) -> dict[str, Cooldown]:
        """LiteLLM's active cooldowns among deployment `ids`. Given their keys' `breakers` (by
        health id), the stale ones (set before the key's breaker last closed) are cleared
        and left out (decisions.stale_cooldowns)."""
        out: dict[str, Cooldown] = {}
        cap = self.clock() + self.breaker.max_cooldown_s
        for i, (since, until, status) in (await adapter.active_cooldowns(self.router, ids)).items():
            if not cooldown_applies(status, self.candidates.get(i)):
                # LiteLLM cools down on 404s, and on a 429 the list hands back: neither takes a key out
                await self.clear_cooldown(i)
                continue
            out[i] = Cooldown(since, min(until, cap) if math.isfinite(until) else cap)  # a Retry-After of years is capped
        for i in stale_cooldowns(out, self.candidates, breakers or {}):
            await self.clear_cooldown(i)  # e.g. this worker's, from before another worker's probe closed the breaker
            del out[i]
        return out

    async def keys_cooling_down(self, hids: Iterable[str], breakers: Mapping[str, Breaker] | None = None) -> dict[str, Cooldown]:
        """LiteLLM's cooldowns by key: health id -> the latest cooldown of any of its
        deployments (in any route), decisions.keys_down. Given the keys' `breakers`, stale
        cooldowns are cleared and left out."""
        ids = [d for h in hids for d in self.deployments_of.get(h, ())]
        return keys_down(await self.cooling_down(ids, breakers), self.candidates)

    async def _snapshot(self, cands: Sequence[Candidate]) -> Snapshot:
        """Every one of `cands`' state at once (what a walk reads bit by bit)."""
        snap = Snapshot()
        await self._read(cands, snap)
        return snap

    async def _next_reads(self, run: FailoverRun, snap: Snapshot) -> AsyncGenerator[Candidate, None]:
        """run.candidates(), reading the state of the candidates as the walk reaches them
        (decisions.next_batch): one store read and one LiteLLM cooldown lookup per batch."""
        while True:
            for c in run.candidates():
                yield c
            if not run.paused:
                return
            batch = run.plan.candidates[next_batch(run.known or 0, len(run.plan.candidates), FIRST_READ)]
            await self._read(batch, snap)
            run.learned(len(batch))

    async def _read(self, cands: Sequence[Candidate], snap: Snapshot) -> None:
        """Read `cands`' LiteLLM cooldowns and breakers into `snap` (decisions.Snapshot.learn);
        store the breakers that adopt a LiteLLM cooldown."""
        hids = [c.health_id for c in cands]
        breakers = await self.store.get_many(hids) if self.breaker_on else None
        cooling = await self.keys_cooling_down(hids, dict(zip(hids, breakers, strict=True)) if breakers is not None else None)
        now = self.clock()
        for hid, _ in snap.learn(cands, cooling, breakers, now):
            snap.breakers[hid] = await self.adopt(hid, cooling[hid], now)
        for hid in hids:
            b = snap.breakers.get(hid)
            if b is not None and b.state is not State.CLOSED:
                self.suspects.add(hid)
        limited = [c for c in cands if c.limits]
        if limited:  # keys without limits cost nothing here
            window = window_of(now)
            snap.limited(limited, await self.usage(limited, window), window_end(window))
        if self.hooks:  # the gauge follows what any replica did, as read
            for c in cands:
                seen = snap.breakers.get(c.health_id)
                if seen is not None:
                    self.emit(BreakerSeen(c.route, c.backend, c.model, c.key, seen.state.value))

    async def usage(self, cands: Sequence[Candidate], window: int) -> list[Usage]:
        """What `cands`' keys used of their limits in `window`: one store read."""
        keys = [k for c in cands for k in counter_keys(c.health_id, window)]
        values = await self.store.counts(keys)
        return [Usage(values[i], values[i + 1]) for i in range(0, len(values), 2)]

    async def reserve(self, c: Candidate, snap: Snapshot) -> bool:
        """Take one of the key's rpm slots in the current window before calling it (one round
        trip: concurrent requests and replicas never make more than rpm calls); False, and the
        slot given back, when it has no room left. A key with a tpm limit only reserves nothing:
        its tokens are known after the call, and the walk read them."""
        if c.limits.rpm is None:
            return True
        window = window_of(self.clock())
        calls, tokens = counter_keys(c.health_id, window)
        counts = [(calls, 1), (tokens, 0)] if c.limits.tpm is not None else [(calls, 1)]
        got = await self.store.add(counts, ttl_s())
        if admitted(c.limits, got[0], got[1] if len(got) > 1 else 0):
            snap.slots[c.health_id] = calls
            return True
        await self.store.add([(calls, -1)], ttl_s())
        snap.refused(window_end(window))
        return False

    async def release(self, c: Candidate, snap: Snapshot) -> None:
        """Give back the slot just reserved for a call that is not made after all (the probe or
        the retry budget said no). A call made keeps its slot, failed or not."""
        calls = snap.slots.pop(c.health_id, None)
        if calls is not None:
            await self.store.add([(calls, -1)], ttl_s())

    async def count_tokens(self, c: Candidate, tokens: int | None) -> None:
        """An answer's tokens count against its key's tpm limit in the current window."""
        if c.limits.tpm is None or not tokens or tokens < 0:
            return
        _, key = counter_keys(c.health_id, window_of(self.clock()))
        await self.store.add([(key, int(tokens))], ttl_s())

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

    async def adopt(self, id: str, cooldown: Cooldown, now: float) -> Breaker:
        """Open a key's closed breaker for as long as LiteLLM cools one of its deployments down
        (unless a success closed it after that cooldown began: checked in the same atomic step)."""
        new, _ = await self._change(id, lambda b: adopt_cooldown(b, cooldown, now))
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
        if signal is not Signal.SUCCESS:
            self.suspects.add(id)
        if not self.breaker_on:
            return None
        if signal is Signal.SUCCESS and seen is not None and settled(seen) and self.breaker.failure_rate is None:
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
        if tell_others and self.waiters:
            await self.store.publish_recovery(id)

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
