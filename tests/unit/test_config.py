from typing import Any

import pytest

from litellm_failover_plugin.conditions import DEFAULT_FALLBACK, Conditions, Kind
from litellm_failover_plugin.config import ConfigError, parse_settings
from litellm_failover_plugin.configfile import load_settings


def base(**routes: Any) -> dict[str, Any]:
    return {
        "backends": {
            "alpha": {"provider": "openai", "api_keys": {"a1": "sk-alpha-1", "a2": "os.environ/ALPHA_KEY_2"}},
            "beta": {"provider": "openai", "api_keys": {"b1": "sk-beta-1"}},
        },
        "routes": routes or {"chat": {"policy": "mk", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
    }


@pytest.fixture(autouse=True)
def alpha_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHA_KEY_2", "sk-from-env-2")


def error_of(section: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(section)
    return str(info.value)


def test_valid_settings_resolve_env_keys() -> None:
    s = parse_settings(base())
    assert s.backends["alpha"].api_keys["a2"].get_secret_value() == "sk-from-env-2"
    assert list(s.backends["alpha"].api_keys) == ["a1", "a2"]  # order kept
    assert s.routes["chat"].elements[1].backend == "beta"
    assert s.routes["chat"].elements[1].model == "gpt-y"


def test_secrets_never_show_in_repr() -> None:
    text = repr(parse_settings(base()))
    assert "sk-alpha-1" not in text and "sk-from-env-2" not in text


@pytest.mark.parametrize(
    ("mutate", "field", "says"),
    [
        (lambda s: s["routes"]["chat"].update(policy="zz"), "failover_settings.routes.chat.policy", "unknown policy"),
        (
            lambda s: s["routes"]["chat"].update(elements=["alpha-gpt"]),
            "failover_settings.routes.chat.elements.0.element",
            "backend:model",
        ),
        (
            lambda s: s["routes"]["chat"].update(elements=["gamma:gpt"]),
            "routes.chat.elements.0",
            "unknown backend 'gamma'",
        ),
        (lambda s: s["backends"]["beta"].update(api_keys={}), "failover_settings.backends.beta.api_keys", "at least one key"),
        (
            lambda s: s["backends"]["beta"].update(api_keys={"b1": "os.environ/NOPE_NOT_SET"}),
            "failover_settings.backends.beta.api_keys",
            "NOPE_NOT_SET is not set",
        ),
        (
            lambda s: s["routes"]["chat"].update(fallback_status_codes=[429, "teapot"]),
            "failover_settings.routes.chat.fallback_status_codes",
            "teapot",
        ),
        (lambda s: s.update(surprise=1), "failover_settings.surprise", "Extra inputs"),
        (
            lambda s: s.update(model_fallback_status_codes={"alpha:other": [500]}),
            "model_fallback_status_codes.alpha:other",
            "not an element",
        ),
        (
            lambda s: s["routes"]["chat"].update(elements=["alpha:gpt-x", "alpha:gpt-x"]),
            "failover_settings.routes.chat.elements",
            "listed twice",
        ),
        (
            lambda s: s["backends"]["alpha"].update(litellm_params={"api_key": "x"}),
            "failover_settings.backends.alpha.litellm_params",
            "set by the plugin",
        ),
    ],
)
def test_bad_settings_name_the_field(mutate: Any, field: str, says: str) -> None:
    section = base()
    mutate(section)
    message = error_of(section)
    assert field in message
    assert says in message


def test_policy_names_are_case_insensitive() -> None:
    s = parse_settings(base(chat={"policy": "KM", "elements": ["alpha:gpt-x"]}))
    assert s.routes["chat"].policy == "km"


def test_a_route_may_have_no_elements_and_a_proxy_no_routes_yet() -> None:
    """Routes are filled and emptied at run time (!/route-clear): an empty route answers like an
    exhausted one, and a proxy may start with none, to be created by command."""
    assert parse_settings(base(chat={"policy": "k", "elements": []})).routes["chat"].elements == []
    assert parse_settings(base(chat={"policy": "k"})).routes["chat"].elements == []
    no_routes = base()
    no_routes["routes"] = {}
    assert parse_settings(no_routes).routes == {}


def test_errors_never_contain_key_values() -> None:
    section = base()
    section["routes"]["chat"]["policy"] = "zz"
    message = error_of(section)
    assert "sk-alpha-1" not in message and "sk-from-env-2" not in message


def test_element_mapping_with_catch_and_params() -> None:
    section = base(
        chat={
            "elements": [
                "alpha:gpt-x",
                {"element": "beta:gpt-y", "catch": ["rate_limit"], "litellm_params": {"max_tokens": 5}},
            ]
        }
    )
    e = parse_settings(section).routes["chat"].elements[1]
    assert e.catch == Conditions(kinds=frozenset({Kind.RATE_LIMIT}))
    assert e.litellm_params == {"max_tokens": 5}


def test_status_code_precedence_element_model_route_default() -> None:
    section = base(
        chat={
            "policy": "m",
            "fallback_status_codes": [503],
            "elements": [
                {"element": "alpha:gpt-x", "fallback_status_codes": [500]},
                "beta:gpt-y",
            ],
        },
        other={"elements": ["beta:gpt-z"]},
    )
    section["model_fallback_status_codes"] = {"alpha:gpt-x": [502], "beta:gpt-y": [504]}
    s = parse_settings(section)
    chat = s.routes["chat"]
    assert s.conditions_for("chat", chat.elements[0]).statuses == {500}  # element's own list
    assert s.conditions_for("chat", chat.elements[1]).statuses == {504}  # model list
    assert s.conditions_for("other", s.routes["other"].elements[0]) == DEFAULT_FALLBACK  # defaults
    del section["model_fallback_status_codes"]
    s = parse_settings(section)
    assert s.conditions_for("chat", s.routes["chat"].elements[1]).statuses == {503}  # route list


def test_defaults_can_be_replaced() -> None:
    section = base()
    section["defaults"] = {"fallback_status_codes": [429, "network"]}
    s = parse_settings(section)
    assert s.defaults.fallback_status_codes.statuses == {429}


def test_load_settings_from_yaml(tmp_path: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list: []\nfailover_settings:\n  backends:\n    a: {provider: openai, api_keys: {k1: sk-1}}\n"
        "  routes:\n    r: {policy: k, elements: ['a:m']}\n"
    )
    assert load_settings(path).routes["r"].policy == "k"


def test_load_settings_without_section(tmp_path: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("model_list: []\n")
    with pytest.raises(ConfigError, match="no failover_settings"):
        load_settings(path)
