"""Routes that change while the proxy runs: config.yaml's, plus what commands and the admin API
changed, kept in a route store and served by every replica.

`LiveRoutes` owns the effective settings (config.yaml's `failover_settings` with the runtime
overlay applied). A change is validated in full (the same checks as at start-up), stored
atomically, applied to this process's router, pushed to the other replicas (Redis pub/sub),
and acknowledged by them before the writer answers. With the file store, another process's
change is noticed by the file's stamp before the next request is served.

Nothing stored is lost by this process: a stored route that no longer validates is set aside
and listed (`unserved`), the others are served; a store that cannot be read leaves the last
good routes in service and refuses changes (`problem`); a store that lost versions (Redis
restarted empty, a truncated file) gets back the newer one this process serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litellm.router import Router

from ..commands import Access, Command, CommandError, Result, execute
from ..config import ConfigError, FailoverSettings, parse_settings
from ..configfile import load_section
from ..overlays import compose, conflict_message, hidden_config_routes, serve
from ..routetable import Catalog, Change, Overlay, RouteEditError, element_names, policy_of
from ..state.routes import FileRouteStore, MemoryRouteStore, RedisRouteStore, StoreError, check_state_file
from .install import foreign_model_names, update
from .route_keeping import REDIS_DOWN, RouteStore, StoreKeeping
from .runner import FailoverRunner
from .translate import check_providers

log = logging.getLogger("litellm_failover_plugin")
ACK_TIMEOUT_S = 2.0  # a writer waits at most this long for the other replicas to apply a change
SESSION_TOUCH_S = 600.0  # a session in use is kept alive in Redis at most this often
RETRY_S = 1.0  # a state file that could not be read is read again at most this often
EPOCH_CHECK_S = 5.0  # a replica looks this often whether Redis lost its data without an outage seen
_REDIS_DOWN = REDIS_DOWN


class StoreUnavailable(Exception):
    """The shared route store cannot be reached: a change cannot be made now (HTTP 503)."""


def state_file_for(config_path: str | None, settings: FailoverSettings) -> Path | None:
    if settings.commands.state_file:
        return Path(settings.commands.state_file)
    if config_path is None:
        return None
    p = Path(config_path)
    return p.with_name(f"{p.stem}.failover-routes.json")


def route_store_for(settings: FailoverSettings, config_path: str | None) -> RouteStore:
    """The route store; a `commands.state_file` that cannot be one stops start-up (ConfigError)."""
    if settings.redis_url:
        return RedisRouteStore.from_url(settings.redis_url)
    path = state_file_for(config_path, settings)
    if path is None:
        return MemoryRouteStore()
    problem = check_state_file(path)
    if problem is not None:
        if settings.commands.state_file:
            raise ConfigError(f"invalid failover_settings:\n  failover_settings.commands.state_file: {problem}")
        log.warning(
            "failover routes: the state file beside config.yaml cannot be used (%s): route changes will be refused; "
            "set failover_settings.commands.state_file to a writable path",
            problem,
        )
    return FileRouteStore(path)


def session_id(headers: Mapping[str, Any] | None, user: Any) -> str | None:
    """A session belongs to the caller that made it: the caller's key (its hashed token), and
    within it the `x-session-id` the client sends. Another key sending the same `x-session-id`
    has a session of its own. Kept only as a hash."""
    identity = str(getattr(user, "token", None) or getattr(user, "api_key", None) or "")
    if not identity:  # an auth that gives no key: the user (or team) it names
        identity = next((f"{a}:{v}" for a in ("user_id", "team_id") if (v := getattr(user, a, None))), "")
    sent = next((str(v) for k, v in (headers or {}).items() if str(k).lower() == "x-session-id" and v), None)
    if sent is not None:
        return "h:" + hashlib.sha256(f"{identity}\x00{sent}".encode()).hexdigest()[:32]
    if identity:
        return "k:" + hashlib.sha256(identity.encode()).hexdigest()[:32]
    return None


@dataclass
class Session:
    route: str
    seen: float
    touched: float


class LiveRoutes(StoreKeeping):
    def __init__(
        self,
        section: Mapping[str, Any],
        store: RouteStore,
        clock: Callable[[], float] = time.time,
        config_path: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.replica = uuid.uuid4().hex[:12]  # tells this process's own announcements apart
        self.section = dict(section)  # config.yaml's failover_settings, as written
        self.base = parse_settings(self.section)
        self.settings = self.base  # in force: config.yaml plus the overlay
        self.overlay = Overlay()
        self.store = store
        self.clock = clock
        self.runner: FailoverRunner | None = None
        self.router: Router | None = None
        self.sessions: dict[str, Session] = {}
        self.unserved: dict[str, str] = {}  # stored routes that do not validate -> why
        self.problem: str | None = None  # why the route store cannot be read now
        self._said: set[str] = set()  # write failures logged already
        self._stamp: tuple[int, ...] | None = None
        self._tried = 0.0
        self._epoch: str | None = None  # Redis: the data set this replica last saw
        self._resync_due = False
        self._apply_lock = asyncio.Lock()

    @property
    def base_routes(self) -> dict[str, dict[str, Any]]:
        routes = self.section.get("routes") or {}
        return {str(k): dict(v) if isinstance(v, Mapping) else v for k, v in routes.items()}

    def compose(self, overlay: Overlay, section: Mapping[str, Any] | None = None) -> FailoverSettings:
        """The settings in force with `overlay` over `section` (default: config.yaml's). Raises ConfigError."""
        return compose(section if section is not None else self.section, overlay)

    def catalog(self) -> Catalog:
        reserved = foreign_model_names(self.router) if self.router is not None else frozenset()
        return Catalog(self.base_routes, frozenset(self.settings.backends), reserved)

    # --- keeping this process current -----------------------------------------------------

    async def load(self) -> None:
        """Read the stored overlay at start: runtime changes survive a restart."""
        try:
            if isinstance(self.store, RedisRouteStore):
                self._epoch = await self.store.epoch(uuid.uuid4().hex)
            await self._sync()
            if isinstance(self.store, RedisRouteStore):
                await self._load_sessions()
        except _REDIS_DOWN as e:
            log.warning("failover routes: route store unreachable at start (%s); serving config.yaml's routes", type(e).__name__)
            self._resync_due = True
            return
        for name in hidden_config_routes(self.section, self.overlay):
            log.info("failover routes: config.yaml's route %r stays deleted (deleted at run time; `!/route-reset(name=%s)` brings it back)", name, name)

    async def apply(self, overlay: Overlay) -> bool:
        """Serve `overlay` if newer than what is served (versions only move forward): every stored
        route that validates; the others are listed in `unserved`, with why, and logged."""
        async with self._apply_lock:
            if overlay.version <= self.overlay.version:
                return True
            try:
                served = serve(self.section, overlay)
            except ConfigError as e:  # config.yaml itself: checked at start and at reload
                log.error("failover routes: stored runtime routes cannot be served (%s); keeping the current ones", e)
                return False
            self._serve(served.settings)
            self.overlay = overlay
            self._set_unserved(served.unserved)
            return True

    def _serve(self, settings: FailoverSettings) -> None:
        if self.router is not None and self.runner is not None:
            update(self.router, self.runner, settings)
        self.settings = settings

    async def before_request(self) -> None:
        """File store: another process changed the routes since the last look? Serve them. (A
        store that could not be read is looked at again at most every RETRY_S.)"""
        if isinstance(self.store, FileRouteStore):
            stamp = self.store.stamp()
            now = self.clock()
            if stamp != self._stamp or (self.problem is not None and now - self._tried >= RETRY_S):
                self._stamp, self._tried = stamp, now
                await self._sync()

    async def listen(self) -> None:
        """Redis: apply other replicas' changes as they are published, and acknowledge them;
        after an outage, or when Redis lost its data, read again and write back what was lost."""
        store = self.store
        if not isinstance(store, RedisRouteStore):
            return
        outage = self._resync_due
        loop = asyncio.get_running_loop()
        looked = loop.time()
        while True:
            try:
                if outage:  # messages may have been missed, or Redis restarted empty
                    await self._resync()
                    log.warning("failover routes: route store reachable again; routes and sessions re-read")
                    outage = False
                async for kind, value in store.changes():
                    if kind == "idle":
                        if loop.time() - looked >= EPOCH_CHECK_S:
                            looked = loop.time()
                            if await store.epoch(uuid.uuid4().hex) != self._epoch:  # flushed, or restarted unseen
                                await self._resync()
                    elif kind == "routes" and value.startswith("reload:"):
                        if value != f"reload:{self.replica}":
                            await self._reload_announced()
                    elif kind == "routes":
                        if not value.isdigit():  # not ours: nothing to apply
                            continue
                        version = int(value)
                        if version > self.overlay.version:
                            await self._sync()
                        await store.acknowledge(version)
                    else:
                        await self._load_session(str(value))
            except asyncio.CancelledError:
                raise
            except _REDIS_DOWN as e:
                if not outage:
                    log.warning("failover routes: route store unreachable (%s); serving the routes known here", type(e).__name__)
                outage = True
                await asyncio.sleep(1.0)
            except (StoreError, ValueError) as e:  # listening goes on; what was missed meanwhile is read again
                log.warning("failover routes: route store listener: %s", e)
                outage = True
                await asyncio.sleep(1.0)

    # --- changes ----------------------------------------------------------------------------

    async def change(self, edit: Callable[[Overlay], tuple[Overlay, Change]], who: str) -> Change:
        """Make one change: validated in full, stored atomically, served here and on every replica."""
        made: list[Change] = []

        def apply_edit(current: Overlay) -> Overlay:
            known = self.overlay
            start = current if current.version >= known.version else known  # versions only move forward
            new, change = edit(start)
            unserved = serve(self.section, new).unserved
            if unserved:  # a route already set aside may stay so; this change may not set one aside
                before = self.unserved if start is known else serve(self.section, start).unserved
                broken = [why for name, why in unserved.items() if name == change.route or name not in before]
                if broken:
                    raise RouteEditError("; ".join(broken))
            made[:] = [change]
            return new

        started = self.clock()
        try:
            overlay, told = await self.store.change(apply_edit)
        except StoreError as e:
            if str(e) not in self._said:
                self._said.add(str(e))
                log.error("failover routes: a route change was refused: %s", e)
            raise StoreUnavailable(f"the route store cannot be used: {e}; nothing changed") from None
        except _REDIS_DOWN as e:
            raise StoreUnavailable(f"the route store is unreachable ({type(e).__name__}); nothing changed") from None
        await self.apply(overlay)
        if isinstance(self.store, FileRouteStore):
            self._stamp = self.store.stamp()
        applied = told
        if isinstance(self.store, RedisRouteStore) and told > 0:
            applied = await self.store.wait_applied(overlay.version, told, ACK_TIMEOUT_S)
            if applied < told:
                log.warning(
                    "failover routes: version %d applied on %d of %d replicas within %.1fs", overlay.version, applied, told, ACK_TIMEOUT_S
                )
        change = made[0]
        log.info(
            "failover route change by=%s action=%s route=%s version=%d replicas=%d ms=%.1f before=%s after=%s",
            who,
            change.action,
            change.route,
            overlay.version,
            applied,
            (self.clock() - started) * 1000,
            _compact(change.before),
            _compact(change.after),
        )
        return change

    async def run_command(self, command: Command, who: str, *, hidden: frozenset[str] = frozenset()) -> Result:
        """Carry out a command; `hidden`: routes a read must not show (the caller may not use them)."""
        if command.spec.access is not Access.WRITE:
            overlay = Overlay(self.overlay.version, {**self.overlay.routes, **dict.fromkeys(hidden)}) if hidden else self.overlay
            return execute(command, overlay, self.catalog())
        catalog = self.catalog()
        results: list[Result] = []

        def edit(current: Overlay) -> tuple[Overlay, Change]:
            result = execute(command, current, catalog)
            assert result.overlay is not None and result.change is not None
            results[:] = [result]
            return result.overlay, result.change

        try:
            await self.change(edit, who)
        except RouteEditError as e:
            raise CommandError(str(e)) from None
        return results[0]

    async def _reload_announced(self) -> None:
        if self.config_path is None:
            return
        try:
            await self.reload(self.config_path, "another replica", announce=False)
        except ConfigError as e:
            log.error("failover settings: reload asked by another replica refused, the running routes stay: %s", e)

    async def reload(self, config_path: str, who: str, *, announce: bool = True) -> FailoverSettings:
        """Re-read config.yaml's failover_settings and serve it (with the runtime overlay); with
        Redis, every other replica then re-reads its own config.yaml. Raises ConfigError, with
        the start-up message, and changes nothing, when it is bad."""
        section = load_section(config_path)
        base = parse_settings(section)
        check_providers(base)
        served = serve(section, self.overlay)
        conflicts = {n: why for n, why in served.unserved.items() if n not in self.unserved}
        if conflicts:  # a route served now would be set aside: that is the stored change's doing
            raise ConfigError(conflict_message(conflicts))
        settings = served.settings
        had = set(self.base_routes)
        async with self._apply_lock:
            self.section = section
            self.base = base
            self._serve(settings)
            self._set_unserved(served.unserved)
        for name in hidden_config_routes(section, self.overlay):
            if name not in had:
                log.warning(
                    "failover routes: config.yaml's new route %r is not served: a stored run-time deletion hides it; "
                    "`!/route-reset(name=%s)` (POST /failover/routes/%s/reset) brings it in",
                    name,
                    name,
                    name,
                )
        log.info("failover settings reloaded from %s by=%s: %d routes", config_path, who, len(settings.routes))
        if announce and isinstance(self.store, RedisRouteStore):
            try:
                await self.store.announce_reload(self.replica)
            except _REDIS_DOWN as e:
                log.warning("failover settings: could not tell the other replicas to reload (%s)", type(e).__name__)
        return settings

    # --- sessions (!/set) -------------------------------------------------------------------

    def session_route(self, sid: str | None) -> str | None:
        if sid is None or not self.sessions:
            return None
        s = self.sessions.get(sid)
        if s is None:
            return None
        now = self.clock()
        ttl = self.settings.commands.session_ttl_s
        if now - s.seen > ttl:
            del self.sessions[sid]
            return None
        s.seen = now
        self.sessions[sid] = self.sessions.pop(sid)  # most recently used last: the cap drops the first
        if isinstance(self.store, RedisRouteStore) and now - s.touched > SESSION_TOUCH_S:
            s.touched = now
            asyncio.get_running_loop().create_task(self._touch(sid, ttl))
        return s.route

    async def _touch(self, sid: str, ttl: float) -> None:
        assert isinstance(self.store, RedisRouteStore)
        with contextlib.suppress(*_REDIS_DOWN):  # the local copy still serves; Redis's may expire early
            await self.store.touch_session(sid, ttl)

    async def set_session(self, sid: str, route: str | None) -> None:
        now = self.clock()
        if isinstance(self.store, RedisRouteStore):
            try:
                await self.store.set_session(sid, route, self.settings.commands.session_ttl_s)
            except _REDIS_DOWN as e:
                raise StoreUnavailable(f"the route store is unreachable ({type(e).__name__}); session unchanged") from None
        if route is None:
            self.sessions.pop(sid, None)
        else:
            self._keep_session(sid, Session(route, now, now))
        log.info("failover session %s: model %s", sid[:10], f"set to route {route!r}" if route else "override cleared")

    def _keep_session(self, sid: str, session: Session) -> None:
        """Keep a session, within commands.max_sessions: past it this process forgets the least
        recently used one (a flood of new session ids cannot grow memory without bound)."""
        self.sessions.pop(sid, None)
        self.sessions[sid] = session
        cap = self.settings.commands.max_sessions
        while len(self.sessions) > cap:
            del self.sessions[next(iter(self.sessions))]

    async def _load_sessions(self) -> None:
        assert isinstance(self.store, RedisRouteStore)
        now = self.clock()
        ttl = self.settings.commands.session_ttl_s
        stored = await self.store.sessions()
        self.sessions = {sid: Session(route, now - (ttl - left if left > 0 else 0), now) for sid, (route, left) in stored.items()}
        for sid in list(self.sessions)[: max(0, len(self.sessions) - self.settings.commands.max_sessions)]:
            del self.sessions[sid]

    async def _load_session(self, sid: str) -> None:
        assert isinstance(self.store, RedisRouteStore)
        route = await self.store.session(sid)
        now = self.clock()
        if route is None:
            self.sessions.pop(sid, None)
        else:
            self._keep_session(sid, Session(route, now, now))


def _compact(route: Mapping[str, Any] | None) -> str:
    if route is None:
        return "none"
    return f"{policy_of(route)}[{','.join(element_names(route))}]"
