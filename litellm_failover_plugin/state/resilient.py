"""Keep serving when the shared store is down or hangs: a decision, logged once per outage.

Every call to the primary store (Redis) is bounded by `timeout_s`, however many round trips it
takes. When one fails or times out, the primary is down (state/link.py decides): reads and
updates go to a local memory store at once, so requests are served on what this replica knows
and never wait on a Redis that does not answer. A reconnect runs in the background, never on a
request's path: a ping, then the breakers this replica changed during the outage are written
back (the local view wins for those: it is the newer news), and only then do requests use the
primary again. An update is applied once, to one store: never again when the primary returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from redis.exceptions import RedisError

from ..breaker import Breaker
from .base import StateStore, Update
from .link import UP, Link, LinkConfig, Use, failed, reconnect_failed, reconnecting, use
from .memory import MemoryStore

log = logging.getLogger("litellm_failover_plugin")
T = TypeVar("T")
_DOWN = (RedisError, OSError, TimeoutError)
_RESYNC_ROUNDS = 10  # write-back rounds (local changes made meanwhile are written in the next)


class SharedStore(StateStore, Protocol):
    async def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...


class ResilientStore:
    def __init__(
        self,
        primary: SharedStore,
        name: str = "redis",
        *,
        timeout_s: float = 0.5,
        link: LinkConfig = LinkConfig(),  # noqa: B008 - frozen
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._local = MemoryStore()
        self._dirty: set[str] = set()
        self._name = name
        self._timeout_s = timeout_s
        self._config = link
        self._clock = clock
        self.link: Link = UP
        self.reconnect_task: asyncio.Task[bool] | None = None

    @property
    def down(self) -> bool:
        return not self.link.up

    async def _try(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """The primary's answer, or None: it is down (serve locally)."""
        decision = use(self.link, self._clock())
        if decision is Use.RECONNECT:
            self.link = reconnecting(self.link)
            self.reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())
        if decision is not Use.PRIMARY:
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                return await call()
        except _DOWN as e:
            self._failed(e)
            return None

    def _failed(self, e: BaseException) -> None:
        was_up = self.link.up
        self.link = failed(self.link, self._clock(), self._config)
        if was_up:
            log.warning(
                "failover state store %s unreachable (%s): serving on this replica's local state until it is back",
                self._name,
                type(e).__name__,
            )

    async def reconnect(self) -> bool:
        """Try the primary now (a reconnect attempt also runs by itself in the background): True if up."""
        if self.link.up:
            return True
        if self.reconnect_task is not None and not self.reconnect_task.done():
            return await asyncio.shield(self.reconnect_task)
        self.link = reconnecting(self.link)
        self.reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())
        return await asyncio.shield(self.reconnect_task)

    async def _reconnect(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._primary.ping()
            written = await self._write_back()
        except Exception as e:  # still down (or anything else went wrong): stay local, try again later
            self.link = reconnect_failed(self.link, self._clock(), self._config)
            if not isinstance(e, _DOWN):
                log.warning("failover state store %s: reconnect failed (%s); trying again later", self._name, type(e).__name__)
            return False
        # nothing awaited since the last dirty breaker was written: nothing this replica learned is lost
        self.link = UP
        self._local = MemoryStore()
        log.warning("failover state store %s is back: %d breaker(s) written back", self._name, written)
        return True

    async def _write_back(self) -> int:
        """Write the breakers changed locally to the primary, until none is left (requests keep
        changing the local state meanwhile: each round writes what changed in the one before)."""
        written = 0
        for _ in range(_RESYNC_ROUNDS):
            if not self._dirty:
                break
            for id in sorted(self._dirty):  # a copy: the set changes while we write
                [b] = await self._local.get_many([id])
                async with asyncio.timeout(self._timeout_s):
                    await self._primary.update(id, _replace_with(b))
                written += 1
                if (await self._local.get_many([id])) == [b]:
                    self._dirty.discard(id)
        if self._dirty:
            log.warning(
                "failover state store %s: %d breaker(s) kept changing during the write-back; the shared state wins for them",
                self._name,
                len(self._dirty),
            )
            self._dirty.clear()
        return written

    async def get_many(self, ids: Sequence[str]) -> list[Breaker]:
        result = await self._try(lambda: self._primary.get_many(ids))
        return result if result is not None else await self._local.get_many(ids)

    async def update(self, id: str, fn: Update) -> tuple[Breaker, Breaker]:
        result = await self._try(lambda: self._primary.update(id, fn))
        if result is not None:
            return result
        self._dirty.add(id)
        return await self._local.update(id, fn)

    async def items(self) -> dict[str, Breaker]:
        result = await self._try(self._primary.items)
        return result if result is not None else await self._local.items()

    async def publish_recovery(self, id: str) -> None:
        await self._try(lambda: self._primary.publish_recovery(id))

    @property
    def primary(self) -> SharedStore:
        return self._primary

    async def aclose(self) -> None:
        if self.reconnect_task is not None:
            self.reconnect_task.cancel()
        await self._primary.aclose()


def _replace_with(b: Breaker) -> Update:
    return lambda _old: b
