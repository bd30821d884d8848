"""The CustomLogger the proxy loads from `litellm_settings.callbacks`.

The proxy resolves `litellm_failover_plugin.plugin` while it loads config.yaml, before its
router exists. `proxy_plugin()` then reads and validates `failover_settings` from the same
file (a bad section stops start-up with a message naming the field) and installs the routes
as soon as the router is up. Every request re-checks the install (one dict lookup), so a
router rebuilt through the admin API gets the routes back on its next request.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy._types import ProxyException
from litellm.router import Router

from ..commands import command_text
from ..config import ConfigError, FailoverSettings, parse_settings
from ..configfile import load_section
from ..requests import check_model, check_request
from ..routing import KEYS_GROUP_PREFIX
from ..state import MemoryStore, StateStore
from ..state.redis import RedisStore
from ..state.resilient import ResilientStore
from ..state.routes import MemoryRouteStore
from . import adapter, compat, selfcheck
from .admin import add_status_routes
from .command_hook import apply_session, carry_out
from .health import HealthChecker
from .health_endpoint import add_health_route_once
from .install import install, installed_runner, is_keys_group, is_ours
from .live import LiveRoutes, route_store_for
from .outcome import PRIORITY_KEY
from .replies import COMMAND_KEY, SESSION_WARNING_HEADER, SESSION_WARNING_KEY
from .runner import FailoverRunner
from .status import status_rows
from .translate import METADATA_KEY, check_providers
from .workers import warn_if_workers

log = logging.getLogger("litellm_failover_plugin")

_ROUTER_WAIT_S = 300.0
_ROUTER_POLL_S = 0.05


def _live_router() -> Router | None:
    return adapter.live_router()


class FailoverPlugin(CustomLogger):
    """Installs failover routes on the proxy's router and reports them in response headers."""

    def __init__(
        self,
        settings: FailoverSettings | LiveRoutes,
        store: StateStore | None = None,
        *,
        config_path: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(settings, FailoverSettings):
            settings = LiveRoutes(settings.model_dump(exclude_unset=True), MemoryRouteStore())
        self.live = settings
        self.config_path = config_path
        self.store = store
        self.runner: FailoverRunner | None = None
        self._loaded = asyncio.Event()
        self._load_task: asyncio.Task[None] | None = None
        self._routes_task: asyncio.Task[None] | None = None
        self.health: HealthChecker | None = None
        self._startup: asyncio.Task[None] | None = None  # held so the task is not garbage-collected
        self._health_task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> FailoverSettings:
        """The settings in force: config.yaml's, with the routes changed at run time."""
        return self.live.settings

    def _the_store(self) -> StateStore:
        if self.store is None:
            url = self.settings.redis_url
            self.store = ResilientStore(RedisStore.from_url(url)) if url else MemoryStore()
            if not url:
                warn_if_workers()
        return self.store

    def ensure_installed(self) -> None:
        router = _live_router()
        if router is None or installed_runner(router) is not None:
            return
        old, self.runner = self.runner, install(router, self.settings, self._the_store())
        if old is not None:  # a rebuilt router: what this process knew of the keys carries over
            self.runner.take_over(old)
        self.runner.gate = selfcheck.entered  # a route request that bypassed a hook is refused
        selfcheck.watch_first_response()
        self.live.router, self.live.runner = router, self.runner
        if self.settings.metrics or adapter.prometheus_callback_on():
            from .metrics import process_hook, serve_metrics  # prometheus_client, only when metrics are on

            self.runner.hooks = (process_hook(),)
            if self.settings.metrics:
                serve_metrics()
        if self._load_task is None:  # the stored runtime routes, once per process
            self._load_task = _spawn(self._load_routes)
        if any(self.settings.queue_for(r) for r in self.settings.routes):
            adapter.cancel_on_disconnect()
        with contextlib.suppress(ImportError):  # litellm used without its proxy extras
            adapter.watch_clients()  # a queued request whose client left makes no call (clients.py)
        if self.settings.health_checks is not None:
            if self.health is None:
                self.health = HealthChecker(self.runner, self.settings.health_checks)
            self.health.runner = self.runner  # a rebuilt router: keep checking the new one
            if self._health_task is None or self._health_task.done():
                self._health_task = _spawn(self.health.run_forever)
        wants_notices = any(self.settings.queue_for(r) for r in self.settings.routes)
        if self.settings.redis_url and wants_notices and (self._listen_task is None or self._listen_task.done()):
            self._listen_task = _spawn(self._listen_for_recoveries)
        add_status_routes(lambda: _proxy_plugin or self)
        add_health_route_once(lambda: _proxy_plugin or self, self.settings.health_endpoint)

    async def _load_routes(self) -> None:
        try:
            await self.live.load()
        finally:
            self._loaded.set()
        if self._routes_task is None:
            self._routes_task = _spawn(self.live.listen)

    async def _ready(self) -> None:
        """The first requests wait (briefly) until the stored runtime routes are served."""
        if not self._loaded.is_set() and self._load_task is not None:
            try:
                await asyncio.wait_for(self._loaded.wait(), timeout=_LOAD_WAIT_S)
            except TimeoutError:
                log.warning("failover routes: stored routes not loaded after %.0fs; serving what is known", _LOAD_WAIT_S)
                self._loaded.set()

    async def _listen_for_recoveries(self) -> None:
        """Wake this replica's queues when any replica sees a deployment recover (Redis pub/sub)."""
        store = self.store.primary if isinstance(self.store, ResilientStore) else self.store
        if not isinstance(store, RedisStore):
            return
        outage = False  # warn once per outage, not on every attempt to listen again
        while True:
            try:
                if outage:
                    await store.ping()
                    outage = False
                    log.info("failover recovery notices: listening again")
                async for id in store.recoveries():
                    if self.runner is not None:
                        await self.runner.recovered(id, tell_others=False)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis away: queues still wake on their own due times meanwhile
                if not outage:
                    log.warning(
                        "failover recovery notices: %s; queues wake on their own due times until Redis is back",
                        type(e).__name__,
                    )
                outage = True
                await asyncio.sleep(1.0)

    def start(self) -> None:
        """Install as soon as the proxy's router exists (called once, from the proxy's loop;
        without a running loop, the first request installs)."""
        self._startup = _spawn(self._install_when_ready)

    async def _install_when_ready(self) -> None:
        add_health_route_once(lambda: _proxy_plugin or self, self.settings.health_endpoint)  # 503 until installed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _ROUTER_WAIT_S
        while _live_router() is None and loop.time() < deadline:
            await asyncio.sleep(_ROUTER_POLL_S)
        try:
            self.ensure_installed()
        except ConfigError as e:
            log.error("%s", e)

    async def status(self) -> dict[str, Any]:
        self.ensure_installed()
        if self.runner is None:
            return {"deployments": [], "store": "none"}
        down = isinstance(self.store, ResilientStore) and self.store.down
        kind = "redis (down: local state)" if down else ("redis" if self.settings.redis_url else "memory")
        queues = {name: w.status() for name, w in self.runner.waiters.items()}
        out: dict[str, Any] = {"store": kind, "deployments": await status_rows(self.runner), "queues": queues}
        out["routes"] = sorted(self.runner.plans)  # every route served, with deployments or not
        out["streams_open"] = self.runner.open_streams  # supervised client streams not closed yet
        out["worker"] = os.getpid()  # with --num_workers, which worker process answered
        routes = self.live.report()  # stored routes set aside, a route store that cannot be read
        out["routes_not_served"], out["route_store_problem"] = routes["not_served"], routes["store_problem"]
        if os.environ.get("FAILOVER_DEBUG_TASKS"):  # for leak tests: the proxy's asyncio tasks
            out["tasks"] = len(asyncio.all_tasks())
        return out

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any] | None:
        self.ensure_installed()
        await self._ready()
        await self.live.before_request()
        _drop_private_metadata(data)
        why = check_model(data)
        if why is not None:
            raise _invalid_request(why)
        chat = str(getattr(call_type, "value", call_type)) in _CHAT_CALLS
        commands = self.settings.commands.enabled
        if commands and chat:
            text = command_text(data.get("messages"))
            if text is not None:
                await carry_out(self.live, text, user_api_key_dict, data, _live_router())
                return None
        if commands and chat and self.live.sessions:  # a session rewrites chat requests only
            await apply_session(self.live, user_api_key_dict, data, _live_router())
        model = data.get("model")
        if isinstance(model, str) and (router := _live_router()) is not None and (is_ours(router, model) or is_keys_group(router, model)):
            raise _invalid_request(f"model {model!r} is not served: ask for its failover route by name")
        if model in self.settings.routes:
            refused = selfcheck.refusal()
            if refused is not None:
                raise refused
            selfcheck.mark(model)
            why = check_request(data, chat=chat)
            if why is not None:  # the client's error: it must never count against an upstream
                raise _invalid_request(why)
            if self.settings.queue_for(data["model"]) is not None:
                adapter.cancel_on_disconnect()  # a settings reload may have dropped it
            # LiteLLM's own scheduler would take a body `priority`; for a route it orders our queue
            priority = data.pop("priority", None)
            md = data.setdefault("metadata", {})
            if isinstance(md, dict):
                priority = md.pop("priority", priority)
                if isinstance(priority, int) and not isinstance(priority, bool):
                    md[PRIORITY_KEY] = priority
        return None

    async def async_filter_listed_models(self, user_api_key_dict: Any, model_names: Sequence[str]) -> Sequence[str]:
        """The model listings (/model/info, /model_group/info, /v1/models) name routes, never the
        keys groups behind them (LiteLLM listed one /model/info row per key, under the group)."""
        return [n for n in model_names if not n.startswith(KEYS_GROUP_PREFIX)]

    async def async_pre_call_check(self, deployment: dict[str, Any], parent_otel_span: Any = None) -> dict[str, Any] | None:
        """The router is about to call a deployment: one of a route's must be the runner's call."""
        if self.runner is not None:
            selfcheck.deployment_call(self.runner, deployment)
        return None

    async def async_post_call_response_headers_hook(
        self,
        data: dict[str, Any],
        user_api_key_dict: Any,
        response: object,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, object] | None = None,
    ) -> dict[str, str] | None:
        # LiteLLM calls this hook: what selfcheck.py checks. (A route reached as a LiteLLM fallback
        # left its headers in LiteLLM's copy of the metadata: they go out as additional headers.)
        selfcheck.headers_ran()
        out: dict[str, str] = {}
        for bucket in ("metadata", "litellm_metadata"):
            md = data.get(bucket)
            if isinstance(md, dict) and isinstance(md.get(SESSION_WARNING_KEY), str):
                out[SESSION_WARNING_HEADER] = md[SESSION_WARNING_KEY]
        for bucket in ("metadata", "litellm_metadata"):
            md = data.get(bucket)
            if isinstance(md, dict) and isinstance(md.get(METADATA_KEY), dict):
                headers = md[METADATA_KEY].get("headers")
                if isinstance(headers, dict):
                    out.update(headers)
                break
        return out or None


_proxy_plugin: FailoverPlugin | None = None
_CHAT_CALLS = frozenset({"completion", "acompletion"})
_LOAD_WAIT_S = 10.0


def _say_last(message: str) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no stderr left: nothing to say it on
        print(message, file=sys.__stderr__, flush=True)


def _invalid_request(message: str) -> ProxyException:
    return ProxyException(message=f"invalid request: {message}", type="invalid_request_error", param=None, code=400)


def _drop_private_metadata(data: dict[str, Any]) -> None:
    """What the plugin leaves in a request's metadata (headers, a command's reply, a queue
    priority) is read back from there: a client's own copy must never be."""
    for bucket in ("metadata", "litellm_metadata"):
        md = data.get(bucket)
        if isinstance(md, dict):
            for key in (METADATA_KEY, COMMAND_KEY, PRIORITY_KEY, SESSION_WARNING_KEY):
                md.pop(key, None)


def _spawn(start: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None] | None:
    """A background task on the running loop; None before the proxy's loop runs (then the
    first request, which re-checks the install, starts it)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.create_task(start())


def _config_path() -> str:
    path = adapter.proxy_config_path() or os.environ.get("CONFIG_FILE_PATH")
    if not path:
        raise ConfigError(
            "litellm_failover_plugin.plugin is loaded by the LiteLLM proxy from its config.yaml; "
            "no config file path is known (start the proxy with --config)"
        )
    return str(path)


def _proxy_logging() -> None:
    """State changes, queue entries and releases are for operators: print them on the proxy's
    stderr, at FAILOVER_LOG_LEVEL (default INFO), unless logging was configured already."""
    if log.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(os.environ.get("FAILOVER_LOG_LEVEL", "INFO").upper())
    log.propagate = False


def proxy_plugin() -> FailoverPlugin:
    """The one plugin instance of this proxy process, built from the proxy's config file."""
    global _proxy_plugin
    if _proxy_plugin is None:
        _proxy_logging()
        try:
            compat.check(proxy=True)
            path = _config_path()
            section = load_section(path)
            settings = parse_settings(section)
            check_providers(settings)
            live = LiveRoutes(section, route_store_for(settings, path), config_path=path)
        except ConfigError as e:
            log.error("litellm_failover_plugin: the proxy cannot start: %s", e)
            # LiteLLM prints its own traceback after this: say it again, last, as the process ends
            atexit.register(_say_last, f"litellm_failover_plugin: the proxy cannot start: {e}")
            raise
        _proxy_plugin = FailoverPlugin(live, config_path=path)
        _proxy_plugin.start()
    return _proxy_plugin


def attach(
    router: Router,
    settings: FailoverSettings | dict[str, Any] | str | os.PathLike[str],
    store: StateStore | None = None,
) -> FailoverRunner:
    """Attach failover routes to a `Router` used from Python (no proxy).

    `settings` is a FailoverSettings, the `failover_settings` mapping, or a config.yaml path.
    Afterwards `await router.acompletion(model="<route>", ...)` fails over like the proxy does.
    """
    from ..configfile import load_settings

    if isinstance(settings, dict):
        settings = parse_settings(settings)
    elif not isinstance(settings, FailoverSettings):
        settings = load_settings(settings)
    check_providers(settings)
    if store is None and settings.redis_url:
        store = ResilientStore(RedisStore.from_url(settings.redis_url))
    return install(router, settings, store)
