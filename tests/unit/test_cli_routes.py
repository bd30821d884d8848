"""`status --proxy-url` says which stored routes are not served and why the route store cannot be read."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from litellm_failover_plugin.__main__ import main


def test_status_lists_stored_routes_not_served_and_a_store_problem(httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]) -> None:
    httpserver.expect_request("/failover/status").respond_with_json({
        "store": "memory",
        "deployments": [],
        "queues": {},
        "routes_not_served": [{"name": "ga", "why": "routes.ga.elements.0: unknown backend 'gamma'", "route": {"elements": ["gamma:g"]}}],
        "route_store_problem": "the state file '/x/routes.json' cannot be read (Is a directory)",
    })
    assert main(["status", "--proxy-url", httpserver.url_for("/").rstrip("/"), "--api-key", "sk-x"]) == 0
    out = capsys.readouterr().out
    assert "not served: stored run-time route 'ga': routes.ga.elements.0: unknown backend 'gamma'" in out
    assert "route store: the state file '/x/routes.json' cannot be read (Is a directory)" in out
