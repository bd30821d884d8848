"""An attempt the plugin falls over from is not the request's outcome: LiteLLM's failure logging
of it waits until the request ends, and is dropped if another attempt serves the request.

LiteLLM logs every failed call in full, inside the call (`litellm.utils.client`'s async
wrapper): it formats the traceback (`traceback.format_exc()`), then `Logging.failure_handler`
redacts secrets out of it, builds the standard logging payload and runs every failure callback;
about 10 ms of CPU per failed call, more than a whole successful request costs the proxy.

While a routed request runs (`begin` ... `end`, in the request's own context):
- wrapper_async's `traceback.format_exc()` gives the exception's one-line summary; the full
  traceback is formatted from the exception if it is logged after all;
- `Logging.failure_handler` and `async_failure_handler` only record the failure.
`settle()` (the runner calls it when it calls again, or waits, after a failure) gives each
recorded failure the router's own accounting only, as LiteLLM's handlers would have called it:
`Router.deployment_callback_on_failure` (allowed_fails and cooldowns) and
`async_deployment_callback_on_failure` (the deployment's usage count). When the request ends:
- served: the serving attempt logged its success as usual (one success, with its usage and
  spend); failures still recorded get the router's accounting;
- failed (exhausted, or an error that goes back as is): the last attempt's failure is logged in
  full, once, through LiteLLM's own handlers (the router's accounting included). A request that
  waited in the queue had its failures settled before waiting: if it then times out, the proxy
  logs its exhausted error as the request's failure (from Python, nothing more is logged).
So LiteLLM's other callbacks (spend logs, Prometheus's per-deployment failure counters, the
operator's own) see one success or one failure per request, none for an attempt fallen over
from; the plugin's own metrics and logs count every attempt. A failure logged outside the
request's context (LiteLLM logs a stream's sync failure handlers from a thread) is not deferred.

`install()` puts the two handlers and the traceback module `litellm.utils` sees in place, once
per process; `check()` (a compat.py hook) verifies what this relies on.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import traceback
import types
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

import litellm.utils as litellm_utils
from litellm.litellm_core_utils.litellm_logging import Logging
from litellm.router import Router

from . import lookup

log = logging.getLogger("litellm_failover_plugin")

HANDLER_PARAMS = ["self", "exception", "traceback_exception", "start_time", "end_time"]
ROUTER_PARAMS = ["self", "kwargs", "completion_response", "start_time", "end_time"]
_MARK = "__failover_deferred__"
_current: ContextVar[FailureLog | None] = ContextVar("litellm_failover_plugin.failure_log", default=None)


@dataclass
class _Failure:
    """One failed call's logging, recorded: its Logging object, the exception, the call's times,
    and which of LiteLLM's two handlers were called for it."""

    logging_obj: Any
    exception: BaseException
    start_time: Any
    end_time: Any
    details: dict[str, Any]  # the call's model_call_details as they were, with the exception
    sync: bool = False
    async_: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # what LiteLLM passed the sync handler by keyword
    async_options: dict[str, Any] = field(default_factory=dict)  # ... and the async one


@dataclass
class FailureLog:
    """The failed attempts of one routed request whose logging waits (see the module's doc)."""

    router: Router
    open: bool = True
    pending: list[_Failure] = field(default_factory=list)
    _token: Token[FailureLog | None] | None = None

    def record(
        self, logging_obj: Any, exception: BaseException, start_time: Any, end_time: Any, *, sync: bool, **options: Any
    ) -> None:
        last = self.pending[-1] if self.pending else None
        if last is None or last.logging_obj is not logging_obj or last.exception is not exception:
            details = {**(getattr(logging_obj, "model_call_details", None) or {}), "exception": exception}
            last = _Failure(logging_obj, exception, start_time, end_time, details)
            self.pending.append(last)
        if sync:
            last.sync = True
            last.options = options
        else:
            last.async_ = True
            last.async_options = options

    async def settle(self) -> None:
        """The failures recorded so far were not the request's outcome: the router's accounting only."""
        pending, self.pending = self.pending, []
        for f in pending:
            await self._account(f)

    async def end(self, failed: bool) -> None:
        """The request is over: log its last failure in full if it failed (`failed`)."""
        self.open = False
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        last = self.pending.pop() if failed and self.pending else None
        await self.settle()
        if last is not None:
            await _log_in_full(last)

    async def _account(self, f: _Failure) -> None:
        try:
            if f.sync:
                self.router.deployment_callback_on_failure(f.details, None, f.start_time, f.end_time)
            if f.async_:
                await self.router.async_deployment_callback_on_failure(f.details, None, f.start_time, f.end_time)
        except Exception as e:  # as LiteLLM's own handlers do: a callback's error is not the request's
            log.warning("failover: LiteLLM's failure accounting of a deployment raised %s", type(e).__name__)


def begin(router: Router) -> FailureLog:
    """Defer the failure logging of the calls made in this context until `end`."""
    failures = FailureLog(router)
    failures._token = _current.set(failures)
    return failures


async def settle() -> None:
    """The failures recorded in this context so far were not the request's outcome."""
    failures = _current.get()
    if failures is not None and failures.open:
        await failures.settle()


def _deferring() -> FailureLog | None:
    failures = _current.get()
    return failures if failures is not None and failures.open else None


async def _log_in_full(f: _Failure) -> None:
    tb = "".join(traceback.format_exception(f.exception))
    try:
        if f.sync:
            _ORIGINAL["failure_handler"](f.logging_obj, f.exception, tb, f.start_time, f.end_time, **f.options)
        if f.async_:
            await _ORIGINAL["async_failure_handler"](f.logging_obj, f.exception, tb, f.start_time, f.end_time, **f.async_options)
    except Exception as e:  # the request's own error goes back, not its logging's
        log.warning("failover: LiteLLM's failure logging raised %s", type(e).__name__)


# --- the hooks -----------------------------------------------------------------------------

_ORIGINAL: dict[str, Callable[..., Any]] = {}


def _sync_handler(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def failure_handler(
        self: Any,
        exception: BaseException,
        traceback_exception: str,
        start_time: Any = None,
        end_time: Any = None,
        **options: Any,  # keyword-only ones LiteLLM added (1.109: for_async_request), passed on as they came
    ) -> None:
        failures = _deferring()
        if failures is None:
            return original(self, exception, traceback_exception, start_time, end_time, **options)  # type: ignore[no-any-return]
        failures.record(self, exception, start_time, end_time, sync=True, **options)
        return None

    setattr(failure_handler, _MARK, True)
    return failure_handler


def _async_handler(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def async_failure_handler(
        self: Any,
        exception: BaseException,
        traceback_exception: str,
        start_time: Any = None,
        end_time: Any = None,
        **options: Any,
    ) -> None:
        failures = _deferring()
        if failures is None:
            return await original(self, exception, traceback_exception, start_time, end_time, **options)  # type: ignore[no-any-return]
        failures.record(self, exception, start_time, end_time, sync=False, **options)
        return None

    setattr(async_failure_handler, _MARK, True)
    return async_failure_handler


def _format_exc(limit: int | None = None, chain: bool = True) -> str:
    if _deferring() is None:
        return traceback.format_exc(limit, chain)
    e = sys.exception()  # the line format_exception_only ends with, without walking the chain's tracebacks
    return f"{type(e).__qualname__}: {e}\n" if e is not None else "NoneType: None\n"


def _traceback_module() -> types.ModuleType:
    shim = types.ModuleType(traceback.__name__, traceback.__doc__)
    shim.__dict__.update({k: v for k, v in vars(traceback).items() if not k.startswith("__")})
    shim.format_exc = _format_exc  # type: ignore[attr-defined]
    setattr(shim, _MARK, True)
    return shim


def install() -> None:
    """Put the deferring handlers and traceback module in place (once per process)."""
    for name, wrap in (("failure_handler", _sync_handler), ("async_failure_handler", _async_handler)):
        _, current = lookup.attribute(Logging, name)
        if not getattr(current, _MARK, False):
            _ORIGINAL[name] = current
            setattr(Logging, name, wrap(current))
    if not getattr(getattr(litellm_utils, "traceback", None), _MARK, False):
        setattr(litellm_utils, "traceback", _traceback_module())  # noqa: B010 (not an exported name)


# --- the start-up check (compat.HOOKS) -----------------------------------------------------


def _unwrapped(cls: type, name: str) -> Any:
    _, fn = lookup.attribute(cls, name)
    return _ORIGINAL.get(name, fn) if getattr(fn, _MARK, False) else fn


def check() -> str | None:
    """What this relies on, as found in the installed LiteLLM: None when all is as expected."""
    for name, is_async in (("failure_handler", False), ("async_failure_handler", True)):
        fn = _unwrapped(Logging, name)
        if not inspect.isfunction(fn) or inspect.iscoroutinefunction(fn) != is_async:
            return f"Logging.{name} is not a {'coroutine ' if is_async else ''}function"
        # what LiteLLM passes (positionally) and the plugin passes back when it logs in full
        if list(inspect.signature(fn).parameters)[: len(HANDLER_PARAMS)] != HANDLER_PARAMS or not lookup.accepts(
            fn, *HANDLER_PARAMS
        ):
            return f"Logging.{name} does not take ({', '.join(HANDLER_PARAMS[1:])})"
    for name, is_async in (("deployment_callback_on_failure", False), ("async_deployment_callback_on_failure", True)):
        fn = lookup.function(Router, name)
        if not inspect.isfunction(fn) or inspect.iscoroutinefunction(fn) != is_async:
            return f"Router.{name} is not a {'coroutine ' if is_async else ''}function"
        if not lookup.accepts(fn, *ROUTER_PARAMS):  # the plugin passes them positionally
            return f"Router.{name} does not take ({', '.join(ROUTER_PARAMS[1:])})"
    tb = getattr(litellm_utils, "traceback", None)
    if tb is not traceback and not getattr(tb, _MARK, False):
        return "litellm.utils no longer imports the traceback module"
    try:
        src = inspect.getsource(litellm_utils.client)
    except (OSError, TypeError):
        src = ""
    for needle in (
        "traceback_exception: Final = traceback.format_exc()",
        "logging_obj.failure_handler(",
        "await logging_obj.async_failure_handler(",
    ):
        if needle not in src:
            return f"litellm.utils.client's wrapper no longer has `{needle}` (how a failed call is logged)"
    return None
