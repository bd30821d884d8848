"""The README's first command: the scaling demo ends with a failover, a recovery and no failures."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from litellm_failover_plugin.testing import free_port

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
    assert "demo-primary-key" not in out and "demo-backup-key" not in out
    assert re.search(r"^\[\*\] proxy master key: sk-proxy-[0-9a-f]{32}$", out, re.M)  # its own, printed
    assert done.returncode == 0
