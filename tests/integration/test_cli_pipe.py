"""`check ... | head`: the reader going away ends the command quietly, with no traceback."""

import subprocess
import sys
from pathlib import Path

import yaml


def test_check_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    keys = {f"k{i}": f"sk-pipe-{i}" for i in range(3000)}  # far more output than a pipe buffers
    cfg = {"failover_settings": {"backends": {"a": {"provider": "openai", "api_keys": keys}}, "routes": {"r": {"policy": "k", "elements": ["a:m"]}}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "litellm_failover_plugin", "check", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"route r:")
    proc.stdout.close()  # like `head -1` exiting
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err
