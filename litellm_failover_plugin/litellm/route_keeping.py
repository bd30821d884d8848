"""How a process keeps its run-time routes in step with the route store, losing nothing.

- A stored route that no longer validates over config.yaml is set aside (`unserved`, with why),
  logged once, and shown by GET /failover/routes and /failover/status; the others serve.
- A store that cannot be read (garbage, a directory, a symlink to text, a Redis key that is not
  an overlay) leaves the last good routes in service; `problem` says why, once in the log, and
  changes answer 503 until it is fixed.
- Versions only move forward: a store that holds nothing or an older version than the one served
  here lost it (Redis restarted empty or flushed, a truncated or replaced file), and this process
  writes its version back; with Redis, the sessions it holds too (told by the data set's epoch).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from ..config import FailoverSettings
from ..overlays import not_served_message
from ..routetable import Overlay
from ..state.routes import FileRouteStore, MemoryRouteStore, RedisRouteStore, StoreError

log = logging.getLogger("litellm_failover_plugin")
RouteStore = MemoryRouteStore | FileRouteStore | RedisRouteStore
REDIS_DOWN = (RedisError, OSError, TimeoutError)


class StoreKeeping:
    """The part of `LiveRoutes` (live.py) that reads the store and writes back what it lost."""

    store: RouteStore
    overlay: Overlay
    settings: FailoverSettings
    unserved: dict[str, str]
    problem: str | None
    sessions: dict[str, Any]
    clock: Callable[[], float]
    _stamp: tuple[int, ...] | None
    _epoch: str | None

    async def apply(self, overlay: Overlay) -> bool:
        raise NotImplementedError

    async def _load_sessions(self) -> None:
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        """What GET /failover/routes and /failover/status show of the stored routes."""
        return {
            "version": self.overlay.version,
            "store": self.store.kind,
            "store_problem": self.problem,
            "not_served": [
                {"name": n, "why": why, "route": self.overlay.routes.get(n)} for n, why in self.unserved.items()
            ],
        }

    def _set_unserved(self, unserved: dict[str, str]) -> None:
        for name, why in unserved.items():
            if self.unserved.get(name) != why:
                log.error("failover routes: %s", not_served_message(name, why))
        for name in self.unserved.keys() - unserved.keys():
            log.info("failover routes: stored run-time route %r is %s", name, "served again" if name in self.settings.routes else "gone")
        self.unserved = dict(unserved)

    def _trouble(self, problem: str) -> None:
        """The store cannot be read: serve what is known, refuse changes, say it once."""
        if problem != self.problem:
            log.error(
                "failover routes: %s; serving the routes known here (version %d); route changes are refused until it is fixed",
                problem,
                self.overlay.version,
            )
        self.problem = problem

    async def _sync(self) -> None:
        """Read the store and serve what is newer. A store that holds nothing or an older version
        lost it (emptied, truncated, replaced): this process writes back what it serves."""
        try:
            stored = await self.store.read()
        except StoreError as e:
            self._trouble(str(e))
            return
        if self.problem is not None:
            log.info("failover routes: the route store is readable again")
            self.problem = None
        known = self.overlay
        if stored is None or stored.version < known.version:
            if known.version > 0:
                await self._write_back(known, stored)
            return
        await self.apply(stored)

    async def _write_back(self, known: Overlay, stored: Overlay | None) -> None:
        held = "nothing" if stored is None else f"version {stored.version}"
        log.warning(
            "failover routes: the route store holds %s, older than the version %d served here (emptied, truncated or "
            "replaced?): writing version %d back; versions only move forward",
            held,
            known.version,
            known.version,
        )
        try:
            await self.store.change(lambda current: known if current.version < known.version else current)
        except (StoreError, *REDIS_DOWN) as e:
            log.error("failover routes: could not write version %d back (%s)", known.version, e)
        if isinstance(self.store, FileRouteStore):
            self._stamp = self.store.stamp()


    async def _resync(self) -> None:
        """Redis again: if its data set changed (restarted empty, flushed), write back the routes
        and sessions this replica holds; then serve what is newest."""
        assert isinstance(self.store, RedisRouteStore)
        epoch = await self.store.epoch(uuid.uuid4().hex)
        lost, self._epoch = self._epoch is not None and epoch != self._epoch, epoch
        if lost:
            now, ttl = self.clock(), self.settings.commands.session_ttl_s
            alive = {sid: (s.route, ttl - (now - s.seen)) for sid, s in self.sessions.items() if now - s.seen < ttl}
            written = await self.store.restore_sessions(alive)
            log.warning("failover routes: Redis lost the route store's data (restarted empty or flushed); %d sessions written back", written)
        await self._sync()
        await self._load_sessions()
