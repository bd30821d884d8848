"""The bad-config table: configs that used to start and then break serving are refused, by
`check` and at start-up, with a message naming the field, printed last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from litellm_failover_plugin.__main__ import main
from litellm_failover_plugin.testing import ProxyProcess


def base() -> dict[str, Any]:
    return {
        "model_list": [{"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_key": "sk-bad-plain"}}],
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {"alpha": {"provider": "openai", "api_keys": {"a1": "sk-bad-a1"}}},
            "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x"]}},
        },
    }


def with_(change: Any) -> dict[str, Any]:
    cfg = base()
    change(cfg["failover_settings"], cfg)
    return cfg


BAD: list[tuple[str, Any, str]] = [
    ("route named like a model", lambda f, c: f["routes"].update(plain=f["routes"]["chat"]), "failover_settings.routes.plain: 'plain' is also a model_name"),
    ("CR/LF in a route name", lambda f, c: f["routes"].update({"bad\r\nx": f["routes"]["chat"]}), "must be printable ASCII"),
    ("unicode route name", lambda f, c: f["routes"].update({"chät": f["routes"]["chat"]}), "must be printable ASCII"),
    ("CR/LF in a model", lambda f, c: f["routes"]["chat"].update(elements=["alpha:gpt\r\nx"]), "must be printable ASCII"),
    ("unknown provider", lambda f, c: f["backends"]["alpha"].update(provider="opneai"), "failover_settings.backends.alpha.provider: unknown LiteLLM provider 'opneai'"),
    ("negative timeout", lambda f, c: f["backends"]["alpha"].update(litellm_params={"timeout": -1}), "litellm_params.timeout must be a positive number"),
    ("element timeout inf", lambda f, c: f["routes"]["chat"].update(elements=[{"element": "alpha:gpt-x", "litellm_params": {"timeout": float("inf")}}]), "litellm_params.timeout must be a positive number"),
    ("inf cooldown", lambda f, c: f.update(breaker={"cooldown_s": float("inf")}), "failover_settings.breaker.cooldown_s"),
    ("huge cooldown", lambda f, c: f.update(breaker={"cooldown_s": 1e300, "max_cooldown_s": 1e301}), "failover_settings.breaker.cooldown_s"),
    ("nan wait", lambda f, c: f.update(queue={"max_wait_s": float("nan")}), "failover_settings.queue.max_wait_s"),
    ("huge queue", lambda f, c: f.update(queue={"max_size": 10**12}), "failover_settings.queue.max_size"),
]


def write(tmp_path: Path, cfg: dict[str, Any], text: str | None = None) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(cfg, allow_unicode=True))
    return path


@pytest.mark.parametrize(("name", "change", "says"), BAD, ids=[b[0] for b in BAD])
def test_check_refuses_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, change: Any, says: str) -> None:
    assert main(["check", "--config", str(write(tmp_path, with_(change)))]) == 1
    err = capsys.readouterr().err
    assert says in err, err
    assert "sk-bad" not in err


def test_a_key_written_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = yaml.safe_dump(base()).replace("    chat:\n", "    chat:\n      policy: k\n", 1)
    assert "policy: k" in text and text.count("policy:") == 2
    assert main(["check", "--config", str(write(tmp_path, {}, text))]) == 1
    assert "failover_settings.routes.chat.policy: written twice" in capsys.readouterr().err


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "change", "says"), [BAD[0], BAD[4], BAD[7]], ids=[BAD[0][0], BAD[4][0], BAD[7][0]])
def test_the_proxy_refuses_to_start_and_says_why_last(tmp_path: Path, name: str, change: Any, says: str) -> None:
    proxy = ProxyProcess(write(tmp_path, with_(change)))
    with pytest.raises(RuntimeError, match="proxy exited"):
        proxy.start(timeout_s=120)
    log = proxy.log_text()
    proxy.close()
    lines = [line for line in log.splitlines() if line.strip()]
    assert says in lines[-1], "\n".join(lines[-5:])
