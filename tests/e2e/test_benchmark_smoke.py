"""The benchmark runs end to end and writes every key the README and the issues name.

Speed is not judged here (that is the benchmark's job, as ratios in one run); this only keeps
benchmarks/run.py from rotting.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "healthy_ratio",
    "outage_ratio",
    "native_outage_ratio",
    "full_outage_success_rate",
    "native_full_outage_success_rate",
    "recovery_s",
    "decision_us_p99",
    "first_failover_overhead_ms",
    "stream_ttft_overhead_ms",
    "midstream_recovery_s",
    "herd_failed_calls",
}


def test_benchmark_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--json", str(out)]
    cmd += ["--seconds", "0.5", "--rounds", "1", "--cycles", "1", "--concurrency", "4", "--decision-rounds", "200"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results.keys() >= KEYS
    assert set(results["decision_us_p99"]) == {"10", "1000", "10000"}
    assert 0.0 <= results["full_outage_success_rate"] <= 1.0
    assert 0.0 <= results["native_full_outage_success_rate"] <= 1.0
    for side in ("plugin", "plain"):
        assert results["sides"][side]["healthy_errors"] == 0
        assert results["sides"][side]["healthy_rps"] > 0
    assert results["midstream_recovery_s"] is not None  # every cut stream was continued to [DONE]
    assert len(results["midstream_recovery_samples_s"]) == 9
    assert results["herd_failed_calls"] <= 5  # counted calls, not speed: 200 requests at a primary that just failed
    assert "bench-key" not in done.stdout + done.stderr and "herd-key" not in done.stdout + done.stderr
