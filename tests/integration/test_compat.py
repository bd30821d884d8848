"""The LiteLLM internals the plugin hooks are checked before a route is installed.

On the installed LiteLLM every hook must be as expected; a hook made to differ (the way a new
release could) refuses routes with a message naming the hook and the LiteLLM version.
"""

import atexit
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import litellm
import pytest
from litellm.proxy import common_request_processing, proxy_server

from litellm_failover_plugin import attach
from litellm_failover_plugin.litellm import adapter, compat, failure_log, plugin
from litellm_failover_plugin.litellm.compat import UnsupportedLiteLLM

SETTINGS = {
    "backends": {"alpha": {"provider": "openai", "api_base": "http://127.0.0.1:9/v1", "api_keys": {"a1": "sk-adapter-a1"}}},
    "routes": {"chat": {"policy": "k", "elements": ["alpha:gpt-x"]}},
}


@pytest.fixture(autouse=True)
def fresh_check() -> Iterator[None]:
    """Every test checks again (the result is cached per process)."""
    compat._checked.cache_clear()
    yield
    compat._checked.cache_clear()


def test_every_hook_is_as_expected_on_the_installed_litellm() -> None:
    assert compat.problems(proxy=True) == []
    compat.check(proxy=True)


def refused(exc: pytest.ExceptionInfo[UnsupportedLiteLLM], hook: str) -> None:
    message = str(exc.value)
    assert f"hook {hook!r}" in message
    assert f"LiteLLM {compat.litellm_version()}" in message
    assert "sk-adapter" not in message


def test_a_moved_router_hook_refuses_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    def set_response_headers(self: Any, response: object) -> object:  # no longer async, fewer params
        return response

    monkeypatch.setattr(litellm.Router, "set_response_headers", set_response_headers)
    router = litellm.Router(model_list=[])
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(router, SETTINGS)
    refused(exc, "Router.set_response_headers")
    assert router.get_model_ids(model_name="chat") == []  # nothing installed
    assert adapter.shadowing(router) is None


def test_a_moved_fallback_step_refuses_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM's fallbacks run after a route through the router's own fallback step."""

    async def async_function_with_fallbacks_common_utils(self: Any, e: Exception, kwargs: dict[str, Any]) -> Any:
        raise e  # fewer params: the step changed

    monkeypatch.setattr(litellm.Router, adapter.AFTER_RETRIES, async_function_with_fallbacks_common_utils)
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(litellm.Router(model_list=[]), SETTINGS)
    refused(exc, "Router.async_function_with_fallbacks_common_utils (fallbacks after a route)")


def test_fallback_hops_that_bypass_the_router_method_refuse_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    from litellm.router_utils import fallback_event_handlers

    async def run_async_fallback(*args: Any, **kwargs: Any) -> Any:
        return None  # a hop that no longer enters router.async_function_with_fallbacks

    monkeypatch.setattr(fallback_event_handlers, "run_async_fallback", run_async_fallback)
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(litellm.Router(model_list=[]), SETTINGS)
    refused(exc, "Router.async_function_with_fallbacks_common_utils (fallbacks after a route)")


def test_a_stream_wrapper_without_its_generator_refuses_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    async def _acompletion_streaming_iterator(self: Any, model_response: Any, *args: Any, **kwargs: Any) -> Any:
        return model_response

    monkeypatch.setattr(litellm.Router, "_acompletion_streaming_iterator", _acompletion_streaming_iterator)
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(litellm.Router(model_list=[]), SETTINGS)
    refused(exc, "stream wrapper")


FAILURE_LOGGING = "failure logging (deferred while an attempt falls over)"


def test_failure_handlers_that_moved_refuse_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    from litellm.litellm_core_utils.litellm_logging import Logging

    def failure_handler(self: Any, exception: Exception, traceback_exception: str) -> None:  # no times any more
        return None

    failure_log.install()  # what the check sees through: the plugin's own wrapper of LiteLLM's handler
    monkeypatch.setitem(failure_log._ORIGINAL, "failure_handler", failure_handler)
    assert getattr(Logging.failure_handler, "__failover_deferred__", False)
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(litellm.Router(model_list=[]), SETTINGS)
    refused(exc, FAILURE_LOGGING)


def test_a_call_wrapper_that_logs_failures_differently_refuses_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    def client(original_function: Any) -> Any:  # a wrapper that no longer formats the traceback itself
        return original_function

    monkeypatch.setattr(litellm.utils, "client", client)
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(litellm.Router(model_list=[]), SETTINGS)
    refused(exc, FAILURE_LOGGING)
    assert "traceback.format_exc()" in str(exc.value)


def test_a_router_without_its_failure_accounting_refuses_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    def async_deployment_callback_on_failure(self: Any, kwargs: Any, completion_response: Any, start_time: Any, end_time: Any) -> None:
        return None  # no longer a coroutine

    monkeypatch.setattr(litellm.Router, "async_deployment_callback_on_failure", async_deployment_callback_on_failure)
    with pytest.raises(UnsupportedLiteLLM) as exc:
        attach(litellm.Router(model_list=[]), SETTINGS)
    refused(exc, FAILURE_LOGGING)


def test_the_proxy_refuses_to_start_when_its_disconnect_handling_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(common_request_processing, "_await_llm_call_cancelling_on_disconnect")
    monkeypatch.setattr(plugin, "_proxy_plugin", None)
    monkeypatch.setattr(plugin, "_proxy_logging", lambda: None)  # leave the test run's logging alone
    compat.check()  # the router's hooks are fine: attach() from Python still works
    with pytest.raises(UnsupportedLiteLLM) as exc:
        plugin.proxy_plugin()
    refused(exc, "disconnect handling")
    atexit.unregister(plugin._say_last)  # a real proxy says it again as it exits; this test run does not


class SettingsStore(MutableMapping[str, Any]):
    """general_settings as newer releases keep it: a mapping that is not a dict."""

    def __init__(self, **values: Any) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@pytest.mark.parametrize("kind", ["dict", "mapping"])
def test_a_queue_turns_on_cancel_on_disconnect(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings: MutableMapping[str, Any] = {"master_key": "x"} if kind == "dict" else SettingsStore(master_key="x")
    monkeypatch.setattr(proxy_server, "general_settings", settings)
    assert adapter.cancel_on_disconnect() is True
    assert settings["cancel_on_disconnect"] is True


def test_an_operators_explicit_false_stands_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = SettingsStore(cancel_on_disconnect=False)
    monkeypatch.setattr(proxy_server, "general_settings", settings)
    monkeypatch.setattr(adapter, "_refused_warned", False)
    with caplog.at_level(logging.WARNING, logger="litellm_failover_plugin"):
        assert adapter.cancel_on_disconnect() is False
    assert settings["cancel_on_disconnect"] is False
    assert "stays queued" in caplog.text


def test_the_proxys_worker_count_from_its_env_or_its_command_line() -> None:
    from litellm_failover_plugin.litellm.workers import proxy_workers

    cmd = ["litellm", "--config", "c.yaml"]
    assert proxy_workers(cmd, {}) == 1
    assert proxy_workers(cmd, {"NUM_WORKERS": "3"}) == 3  # 1.104 and later export it
    assert proxy_workers([*cmd, "--num_workers", "2"], {}) == 2  # 1.102: a worker has the proxy's argv
    assert proxy_workers([*cmd, "--num_workers=4"], {}) == 4
    assert proxy_workers([*cmd, "--num_workers", "x"], {}) == 1
    assert proxy_workers([*cmd, "--num_workers"], {}) == 1
