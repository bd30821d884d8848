from pathlib import Path

import pytest

from litellm_failover_plugin.__main__ import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_check_prints_the_attempt_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "failover_settings:\n"
        "  backends:\n"
        "    alpha: {provider: openai, api_keys: {a1: sk-1, a2: sk-2}}\n"
        "    beta: {provider: openai, api_keys: {b1: sk-3, b2: sk-4}}\n"
        "  routes:\n"
        "    chat: {policy: mk, elements: ['alpha:gpt-x', 'beta:gpt-y']}\n"
    )
    assert main(["check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    order = [line.split(". ", 1)[1].split("  ")[0] for line in out.splitlines() if ". " in line]
    assert order == ["alpha:gpt-x key a1", "beta:gpt-y key b1", "alpha:gpt-x key a2", "beta:gpt-y key b2"]
    assert "sk-" not in out


def test_check_reports_bad_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "failover_settings:\n  backends:\n    a: {provider: openai, api_keys: {k: sk-1}}\n"
        "  routes:\n    r: {policy: nope, elements: ['a:m']}\n"
    )
    assert main(["check", "--config", str(cfg)]) == 1
    assert "failover_settings.routes.r.policy" in capsys.readouterr().err


def test_shipped_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_KEY_MAIN", "OPENAI_KEY_SPARE", "OPENROUTER_KEY"):
        monkeypatch.setenv(var, "sk-example")
    assert main(["check", "--config", str(CONFIGS / "example.yaml")]) == 0


def test_shipped_providers_config_is_valid(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("OPENAI_KEY_MAIN", "OPENAI_KEY_SPARE", "AZURE_KEY_EAST", "AZURE_KEY_WEST", "ANTHROPIC_KEY", "OPENROUTER_KEY"):
        monkeypatch.setenv(var, f"sk-{var.lower()}")
    assert main(["check", "--config", str(CONFIGS / "providers.yaml")]) == 0
    out = capsys.readouterr().out
    assert "azure:gpt-4o key east" in out and "azure:gpt-4o key west" in out and "sk-" not in out


def test_check_no_env_lints_a_config_whose_keys_are_not_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "failover_settings:\n"
        "  backends:\n"
        "    alpha: {provider: openai, api_keys: {a1: os.environ/NOT_SET_IN_CI_A1}}\n"
        "  routes:\n"
        "    chat: {policy: k, elements: ['alpha:gpt-x']}\n"
    )
    assert main(["check", "--config", str(cfg)]) == 1  # without it: the variable must be set
    assert "NOT_SET_IN_CI_A1 is not set" in capsys.readouterr().err
    assert main(["check", "--config", str(cfg), "--no-env"]) == 0
    out = capsys.readouterr().out
    assert "alpha:gpt-x key a1" in out and "NOT_SET_IN_CI_A1" in out and "placeholder" not in out
    import os

    assert "NOT_SET_IN_CI_A1" not in os.environ  # taken out again
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace("policy: k", "policy: zz"))
    assert main(["check", "--config", str(bad), "--no-env"]) == 1  # a real mistake still fails


def test_status_of_an_unknown_route_says_so_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "failover_settings:\n"
        "  redis_url: redis://127.0.0.1:1/0\n"
        "  backends:\n"
        "    alpha: {provider: openai, api_keys: {a1: sk-1}}\n"
        "  routes:\n"
        "    chat: {policy: k, elements: ['alpha:gpt-x']}\n"
    )
    assert main(["status", "--config", str(cfg), "--route", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no route 'nope'" in err and "chat" in err


def test_status_from_a_proxy_refuses_an_unknown_route(capsys: pytest.CaptureFixture[str]) -> None:
    from litellm_failover_plugin.__main__ import _route_known

    assert not _route_known("nope", {"routes": ["chat", "empty"], "deployments": []})
    assert _route_known("empty", {"routes": ["chat", "empty"], "deployments": []})  # a route with no elements
    assert _route_known("chat", {"deployments": [{"route": "chat"}]})  # an older proxy: no `routes`
