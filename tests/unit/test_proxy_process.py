"""The test harness's proxy: what a failing test gets to see of the proxy's log."""

from __future__ import annotations

import pytest

from litellm_failover_plugin.testing import ProxyProcess

ASGI_FAILURE = """INFO:     127.0.0.1:40740 - "POST /v1/chat/completions HTTP/1.1" 200 OK
ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "uvicorn/protocols/http/h11_impl.py", line 410, in run_asgi
RuntimeError: Invalid HTTP header value.
"""


def test_a_failure_inside_the_with_block_shows_the_proxys_log(capsys: pytest.CaptureFixture[str]) -> None:
    proxy = ProxyProcess({"model_list": []})  # never started: only its log is read
    proxy.log_path.write_text("started\n" + ASGI_FAILURE + "".join(f"line {i}\n" for i in range(100)))
    proxy.__exit__(AssertionError, AssertionError("the test failed"), None)  # as `with` does on a failure
    failures, tail = capsys.readouterr().err.split("its log, last lines:")
    assert "Exception in ASGI application" in failures and "Invalid HTTP header value." in failures
    assert "line 99" in tail and "line 20\n" in tail and "line 19\n" not in tail  # its last 80 lines


def test_a_passing_with_block_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    proxy = ProxyProcess({"model_list": []})
    proxy.log_path.write_text(ASGI_FAILURE)
    proxy.__exit__(None, None, None)
    assert capsys.readouterr().err == ""
