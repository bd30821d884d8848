"""Active health checks: probe open deployments in the background, so recovery costs no user request.

Every `interval_s`, up to `max_per_interval` keys (backend, model, key) whose breaker is not
closed, those probed longest ago first, get one small completion (max_tokens=1) sent straight through litellm (not the router: no cooldown or
spend side effects). A round reads the keys this process saw fail or not closed and, in
rotation, SCAN_PER_INTERVAL of the others (decisions.health_scan): its cost does not grow with
the number of keys, and a key opened by another replica is found within ceil(keys / 512)
rounds (the replica that opened it probes it meanwhile). A health check takes the breaker's probe slot first, so with Redis one
replica probes a deployment at a time, and user traffic does not probe it meanwhile. A success
closes the breaker and clears LiteLLM's cooldown; a failure leaves it open. A probe of a key
with an rpm limit takes one of its slots (limits.py); at its limit, it waits for a later round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import litellm

from ..breaker import Signal, State, hold_probe, release_probe
from ..config import HealthCheckSettings
from ..decisions import Snapshot, health_scan, probe_order
from .runner import FailoverRunner
from .translate import classify

log = logging.getLogger("litellm_failover_plugin")
PING = [{"role": "user", "content": "ping"}]
SCAN_PER_INTERVAL = 512  # keys read per round besides the suspects


class HealthChecker:
    def __init__(
        self,
        runner: FailoverRunner,
        settings: HealthCheckSettings,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.runner = runner
        self.settings = settings
        self._sleep = sleep
        self._at = 0  # where the next round's scan goes on
        self._probed: dict[str, float] = {}  # health id -> when a round last probed it

    async def tick(self) -> list[str]:
        """One round: probe the keys that are due. Returns the health ids it probed."""
        runner = self.runner
        runner.suspects &= runner.deployments_of.keys()  # keys a route change removed are nobody's
        ids, self._at = health_scan(list(runner.deployments_of), runner.suspects, self._at, SCAN_PER_INTERVAL)
        now = runner.clock()
        breakers = await runner.store.get_many(ids)
        cooling = await runner.keys_cooling_down(ids, dict(zip(ids, breakers, strict=True)))
        for n, (id, b) in enumerate(zip(ids, breakers, strict=False)):
            if id in cooling and b.state is State.CLOSED:
                breakers[n] = await runner.adopt(id, cooling[id], now)
            if breakers[n].state is State.CLOSED:
                runner.suspects.discard(id)
            else:
                runner.suspects.add(id)
        due = [i for i, b in zip(ids, breakers, strict=False) if b.state is not State.CLOSED and now >= b.probe_until]
        due = probe_order(due, self._probed, self.settings.max_per_interval)
        taken = [i for i in await asyncio.gather(*(self._take(i) for i in due)) if i is not None]
        self._probed = {i: t for i, t in self._probed.items() if i in runner.suspects}  # closed or removed: forgotten
        self._probed.update(dict.fromkeys(taken, now))
        await asyncio.gather(*(self._check(i) for i in taken))
        return taken

    async def _take(self, id: str) -> str | None:
        now = self.runner.clock()
        old, new = await self.runner.store.update(id, lambda b: hold_probe(b, now, self.settings.timeout_s))
        return id if new.probe_until != old.probe_until else None

    async def _check(self, id: str) -> None:
        c = self.runner.candidates.get((self.runner.deployments_of.get(id) or [""])[0])
        if c is not None and c.limits and not await self.runner.reserve(c, Snapshot()):
            await self.runner.store.update(id, release_probe)  # at its rate limit: a probe is a call too
            return
        if await self.probe(id):
            await self.runner.report(id, Signal.SUCCESS, None)
        else:
            await self.runner.store.update(id, release_probe)

    async def probe(self, id: str) -> bool:
        """One small call with the key (`id`: its health id), through any of its deployments."""
        ids = self.runner.deployments_of.get(id) or [id]
        deployment = self.runner.router.get_deployment(model_id=ids[0])
        if deployment is None:
            return False
        params: dict[str, Any] = deployment.litellm_params.model_dump(exclude_none=True)
        params.update(max_retries=0, timeout=self.settings.timeout_s, max_tokens=1, messages=PING)
        params["metadata"] = {"tags": ["failover-health-check"]}
        params["no-log"] = True  # internal traffic: not for the users' logging callbacks (and ~30% cheaper)
        try:
            await asyncio.wait_for(litellm.acompletion(**params), self.settings.timeout_s + 1)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            failure = classify(e, self.runner._redact)
            log.debug("failover health check key=%s failed (%s)", id, failure.label)
            return False
        return True

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("failover health checks: a round failed; trying again next interval")
            await self._sleep(self.settings.interval_s)
