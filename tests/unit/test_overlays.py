"""Which stored run-time routes serve over a config.yaml (overlays.py). Pure."""

from __future__ import annotations

from typing import Any

from litellm_failover_plugin.overlays import hidden_config_routes, serve
from litellm_failover_plugin.routetable import Overlay


def section(**extra: Any) -> dict[str, Any]:
    return {
        "backends": {"alpha": {"provider": "openai", "api_keys": {"a1": "sk-a1"}}},
        "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x"]}},
        **extra,
    }


def test_every_stored_route_that_validates_serves_and_each_other_says_why() -> None:
    overlay = Overlay(7, {
        "ok": {"elements": ["alpha:a"]},
        "a": {"elements": ["gamma:g"]},
        "a.b": {"elements": ["alpha:b"], "max_retries_per_element": "many"},
        "junk": ["not", "a", "mapping"],  # type: ignore[dict-item]
        "ok2": {"elements": ["alpha:c"]},
    })
    served = serve(section(), overlay)
    assert set(served.settings.routes) == {"chat", "ok", "ok2"}
    assert set(served.unserved) == {"a", "a.b", "junk"}
    assert "unknown backend 'gamma'" in served.unserved["a"] and "a.b" not in served.unserved["a"]
    assert "max_retries_per_element" in served.unserved["a.b"]
    assert served.unserved["junk"] == "the stored route is not a mapping"


def test_a_problem_that_names_no_stored_route_is_found_one_route_at_a_time() -> None:
    # config.yaml's own fall-over list names chat's element: deleting chat at run time breaks it
    sec = section(model_fallback_status_codes={"alpha:gpt-x": [500]})
    served = serve(sec, Overlay(2, {"chat": None, "ok": {"elements": ["alpha:a"]}}))
    assert set(served.settings.routes) == {"chat", "ok"}
    assert list(served.unserved) == ["chat"] and "model_fallback_status_codes" in served.unserved["chat"]


def test_a_stored_deletion_of_a_config_route_is_reported() -> None:
    assert hidden_config_routes(section(), Overlay(1, {"chat": None, "gone": None})) == ["chat"]
