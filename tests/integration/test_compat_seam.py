"""A hook is found as Python finds it and checked by what the plugin passes (LiteLLM 1.108/1.109
moved some and widened one), the shadow is checked where the router's calls run, and LiteLLM's
Rust core is refused at start-up and on traffic (rustcore.py)."""

import contextvars
import importlib.util
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.proxy._types import ProxyException

from litellm_failover_plugin import attach
from litellm_failover_plugin.litellm import adapter, compat, failure_log, lookup, rustcore, selfcheck
from litellm_failover_plugin.litellm.compat import UnsupportedLiteLLM

SETTINGS = {
    "backends": {"alpha": {"provider": "openai", "api_base": "http://127.0.0.1:9/v1", "api_keys": {"a1": "sk-seam-a1"}}},
    "routes": {"chat": {"policy": "k", "elements": ["alpha:gpt-x"]}},
}
HAS_RUST_BRIDGE = importlib.util.find_spec("litellm.rust_bridge") is not None
HAS_CATALOG = HAS_RUST_BRIDGE and importlib.util.find_spec("litellm.rust_bridge.catalog") is not None
needs_rust_bridge = pytest.mark.skipif(not HAS_RUST_BRIDGE, reason="LiteLLM before 1.108 has no Rust bridge")


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    compat._checked.cache_clear()
    selfcheck.reset()
    yield
    compat._checked.cache_clear()
    selfcheck.reset()


# --- finding a hook -------------------------------------------------------------------------


class Core:
    async def set_response_headers(self, response: Any, model_group: str, request_kwargs: dict[str, Any]) -> Any:
        return response


class ServesCore(type):
    """As LiteLLM 1.109's Router facade: class-level reads of members it lacks go to its core class."""

    def __getattr__(cls, name: str) -> Any:
        return getattr(Core, name)


class Facade(metaclass=ServesCore):
    pass


class Base:
    async def set_response_headers(self, response: Any, model_group: str, request_kwargs: dict[str, Any]) -> Any:
        return response


class Moved(Base):
    pass


def test_a_method_moved_to_a_base_class_or_served_from_a_core_class_is_the_same_hook() -> None:
    assert lookup.attribute(Moved, "set_response_headers") == (Base, vars(Base)["set_response_headers"])
    assert lookup.attribute(Facade, "set_response_headers") == (Core, vars(Core)["set_response_headers"])
    assert lookup.attribute(Facade, "nothing") == (None, lookup.MISSING)
    params = ("response", "model_group", "request_kwargs")
    for cls in (Moved, Facade):
        assert compat._method(cls, "set_response_headers", is_async=True, params=params) is None
    assert compat._method(Facade, "nothing", is_async=True) == "Facade.nothing is missing"
    assert lookup.shadowable(Core, "set_response_headers")


def test_a_keyword_only_parameter_with_a_default_is_no_break_one_without_is() -> None:
    class Widened:
        async def set_response_headers(self, response: Any, model_group: str, request_kwargs: Any, *, extra: bool = False) -> Any:
            return response

    class Narrowed:
        async def set_response_headers(self, response: Any, model_group: str, request_kwargs: Any, *, extra: bool) -> Any:
            return response

    params = ("response", "model_group", "request_kwargs")
    assert compat._method(Widened, "set_response_headers", is_async=True, params=params) is None
    why = compat._method(Narrowed, "set_response_headers", is_async=True, params=params)
    assert why == "Narrowed.set_response_headers cannot be called with (response, model_group, request_kwargs)"


def test_a_failure_handler_with_a_new_keyword_only_parameter_is_deferred_and_gets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM 1.109's Logging.failure_handler(..., *, for_async_request=False): still the hook, and
    what LiteLLM passes reaches it, now and when a deferred failure is logged in full."""
    seen: list[dict[str, Any]] = []

    def failure_handler(
        self: Any, exception: Exception, traceback_exception: str, start_time: Any = None, end_time: Any = None, *, for_async_request: bool = False
    ) -> None:
        seen.append({"exception": exception, "for_async_request": for_async_request})

    failure_log.install()
    monkeypatch.setitem(failure_log._ORIGINAL, "failure_handler", failure_handler)
    assert failure_log.check() is None

    error = ValueError("upstream")
    wrapped = failure_log._sync_handler(failure_handler)  # what install() puts on Logging
    wrapped(object(), error, "tb", None, None, for_async_request=True)  # not deferring: passed on
    assert seen == [{"exception": error, "for_async_request": True}]


async def test_a_deferred_failure_logged_in_full_gets_what_litellm_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def failure_handler(self: Any, exception: Exception, tb: str, start_time: Any = None, end_time: Any = None, *, for_async_request: bool = False) -> None:
        seen.append(for_async_request)

    failure_log.install()
    monkeypatch.setitem(failure_log._ORIGINAL, "failure_handler", failure_handler)
    from litellm.litellm_core_utils.litellm_logging import Logging

    failures = failure_log.begin(litellm.Router(model_list=[]))
    logging_obj = type("L", (), {"model_call_details": {}})()
    Logging.failure_handler(logging_obj, ValueError("x"), "tb", None, None, for_async_request=True)
    assert seen == []  # deferred while the route runs
    monkeypatch.setattr(failures, "_account", _no_accounting)
    await failures.end(failed=True)
    assert seen == [True]


async def _no_accounting(f: Any) -> None:
    return None


def test_a_failure_handler_that_needs_a_new_argument_refuses_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    def failure_handler(self: Any, exception: Exception, traceback_exception: str, start_time: Any, end_time: Any, *, attempt: int) -> None:
        return None

    failure_log.install()
    monkeypatch.setitem(failure_log._ORIGINAL, "failure_handler", failure_handler)
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(litellm.Router(model_list=[]), SETTINGS)
    assert "hook 'failure logging (deferred while an attempt falls over)'" in str(exc.value)


# --- the shadow -----------------------------------------------------------------------------


def test_the_shadow_is_seen_where_the_routers_calls_run_and_undone_there() -> None:
    router = litellm.Router(model_list=[])
    runner = attach(router, SETTINGS)
    core = adapter.calls_run_on(router)  # the router itself up to 1.108, its core object on 1.109
    assert getattr(core, adapter.FALLBACKS) is runner
    assert adapter.shadowing(router) is runner
    adapter.unshadow(router)
    assert adapter.shadowing(router) is None
    assert getattr(core, adapter.FALLBACKS) is not runner  # 1.109: the core's shadow went too


def test_a_router_whose_calls_run_where_the_shadow_is_not_seen_refuses_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    class ElsewhereCore:  # e.g. a core that is not a Python object the plugin can shadow a method on
        async def async_function_with_fallbacks(self, *args: Any, **kwargs: Any) -> Any:
            return None

    elsewhere = ElsewhereCore()
    monkeypatch.setattr(adapter, "calls_run_on", lambda router: elsewhere)
    router = litellm.Router(model_list=[])
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(router, SETTINGS)
    assert "hook 'Router.async_function_with_fallbacks (shadowed)'" in str(exc.value)
    assert "ElsewhereCore" in str(exc.value)
    assert adapter.shadowing(router) is None


# --- LiteLLM's Rust core --------------------------------------------------------------------


def test_without_a_rust_switch_nothing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rustcore.ENV, raising=False)
    assert rustcore.problem() is None
    assert compat.problems(proxy=True) == []


@needs_rust_bridge
@pytest.mark.parametrize("value", ["true", "1", "True"])
def test_litellm_rust_in_the_environment_refuses_routes_at_start_up(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rustcore.ENV, value)
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(litellm.Router(model_list=[]), SETTINGS)
    message = str(exc.value)
    assert f"hook {rustcore.HOOK!r}" in message
    assert f"the environment sets LITELLM_RUST={value}" in message
    assert "messages" in message  # what it may serve (/v1/messages to anthropic, in every release read)


@needs_rust_bridge
def test_litellm_rust_true_in_the_process_refuses_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    from litellm.rust_bridge import configuration

    monkeypatch.delenv(rustcore.ENV, raising=False)
    monkeypatch.setattr(configuration._CONFIGURATION, "override", True)
    why = rustcore.problem()
    assert why is not None and why.startswith("the process called litellm.rust(True)")
    monkeypatch.setenv(rustcore.ENV, "false")
    if HAS_CATALOG:  # 1.106 on: an explicit environment value wins over the process's
        assert rustcore.problem() is None
    else:  # 1.102: the process's wins
        assert rustcore.problem() == why


@needs_rust_bridge
def test_a_rust_switch_turned_on_at_run_time_refuses_route_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    def route_request() -> None:  # in a context of its own, as the proxy's request task has
        selfcheck.mark("chat")
        selfcheck.entered({"model": "chat"})

    monkeypatch.delenv(rustcore.ENV, raising=False)
    contextvars.copy_context().run(route_request)  # no switch: served
    monkeypatch.setenv(rustcore.ENV, "true")
    with pytest.raises(ProxyException) as exc:
        contextvars.copy_context().run(route_request)
    assert exc.value.type == selfcheck.UNAVAILABLE_TYPE and exc.value.code == "503"
    assert "LITELLM_RUST=true" in exc.value.message


class Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self._hidden_params = {"additional_headers": headers}


@pytest.mark.parametrize(
    ("headers", "named"),
    [({"x-litellm-rust": "true"}, "x-litellm-rust: true"), ({"X-LiteLLM-Core": "rust"}, "x-litellm-core: rust")],
)
async def test_a_route_response_from_the_rust_core_is_answered_503(headers: dict[str, str], named: str) -> None:
    router = litellm.Router(model_list=[])
    with pytest.raises(ProxyException) as exc:
        await adapter.set_response_headers(router, Response(headers), "chat", {})
    assert exc.value.type == selfcheck.UNAVAILABLE_TYPE and exc.value.code == "503"
    assert f"hook {rustcore.HOOK!r}" in exc.value.message and named in exc.value.message
    assert selfcheck.broken() is not None  # every route request is refused from then on


async def test_a_route_response_from_the_python_core_is_served() -> None:
    router = litellm.Router(model_list=[])
    for headers in ({"x-litellm-core": "python"}, {"x-litellm-rust": "false"}, {}):
        response = Response(headers)
        assert await adapter.set_response_headers(router, response, "chat", {}) is response
    assert selfcheck.broken() is None
