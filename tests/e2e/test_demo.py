"""The README's first command: the scaling demo ends with a failover, a recovery and no failures."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess, free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_demo_fails_over_and_recovers_without_failures(tmp_path: Path) -> None:
    primary, backup, proxy = free_port(), free_port(), free_port()
    config = (ROOT / "configs" / "demo.yaml").read_text()
    config = config.replace("127.0.0.1:9101", f"127.0.0.1:{primary}").replace("127.0.0.1:9102", f"127.0.0.1:{backup}")
    (tmp_path / "demo.yaml").write_text(config)
    # outage from t=3s to t=7s; LiteLLM's 5 s cooldown brings the primary back by t=12s at the latest
    cmd = [sys.executable, str(ROOT / "examples" / "scaling_demo.py"), "--config", str(tmp_path / "demo.yaml")]
    cmd += ["--primary-port", str(primary), "--backup-port", str(backup), "--proxy-port", str(proxy)]
    cmd += ["--duration", "20", "--interval", "0.25", "--outage-at", "3", "--outage-for", "4"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    out = done.stdout
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"SUMMARY total=(\d+) succeeded=(\d+) failed=(\d+) failovers=(\d+) recoveries=(\d+)", last)
    assert m, f"unexpected last line {last!r}\n{done.stderr[-2000:]}"
    total, succeeded, failed, failovers, recoveries = map(int, m.groups())
    assert failed == 0 and succeeded == total > 0
    assert failovers >= 1 and recoveries >= 1
    assert "FAILOVER DETECTED: primary -> backup" in out
    assert "RECOVERED: back to primary" in out
    assert "✓ FAILOVER" in out and "FALLBACK" not in out  # the README's word
    assert "warm-up request (not counted): ok" in out  # a cold first answer is not the p99
    assert "demo-primary-key" not in out and "demo-backup-key" not in out
    assert re.search(r"^\[\*\] proxy master key: sk-proxy-[0-9a-f]{32}$", out, re.M)  # its own, printed
    assert done.returncode == 0


def test_the_demo_drives_any_proxy_with_its_key_route_and_scale_commands(upstream: FakeUpstream) -> None:
    """A proxy started separately, with a master key and a route named `smart`: the demo sends
    to it with that key, shows what the scale commands print, and stops with a failing one's status."""
    cfg = {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {"main": {"provider": "openai", "api_base": upstream.url, "api_keys": {"m1": "sk-demo-any-m1"}}},
            "routes": {"smart": {"policy": "k", "elements": ["main:model"]}},
        },
    }
    demo = [sys.executable, str(ROOT / "examples" / "scaling_demo.py"), "--route", "smart", "--primary-backend", "main"]
    timing = ["--duration", "3", "--interval", "0.25", "--outage-at", "1", "--outage-for", "1"]
    say = [sys.executable, "-c"]
    with ProxyProcess(cfg) as proxy:
        env = {**os.environ, "LITELLM_API_KEY": proxy.master_key}
        scale = ["--scale-down-cmd", shlex.join([*say, "print('scaled down: 0 replicas')"])]
        scale += ["--scale-up-cmd", shlex.join([*say, "print('scaled up: 1 replica')"])]
        done = subprocess.run([*demo, "--proxy-url", proxy.url, *scale, *timing], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "| scaled down: 0 replicas" in done.stdout and "| scaled up: 1 replica" in done.stdout
        assert re.search(r"SUMMARY total=(\d+) succeeded=\1 failed=0", done.stdout)

        broken = ["--scale-down-cmd", shlex.join([*say, "import sys; print('no such deployment', file=sys.stderr); sys.exit(7)"])]
        broken += ["--scale-up-cmd", "true"]
        done = subprocess.run([*demo, "--proxy-url", proxy.url, *broken, *timing], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 7, done.stdout[-2000:]
        assert "| no such deployment" in done.stdout and "the scale command failed" in done.stdout
