"""Start and stop a real `litellm --config` proxy process on 127.0.0.1.

Each proxy gets a master key of its own (LITELLM_MASTER_KEY), so it runs the same whatever a
LiteLLM release assumes about keys (1.104 and later refuse to start without one); clients send
`proxy.headers`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def litellm_command() -> list[str]:
    exe = Path(sys.executable).parent / "litellm"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("litellm")
    if found:
        return [found]
    return [sys.executable, "-c", "from litellm.proxy.proxy_cli import run_server; run_server()"]


class ProxyProcess:
    """A LiteLLM proxy with the given config (a dict written to a temp file, or a path), and a
    master key: `master_key`, else a random one."""

    def __init__(
        self,
        config: dict[str, Any] | str | os.PathLike[str],
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        workers: int = 1,
        master_key: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.master_key = master_key or f"sk-proxy-{secrets.token_hex(16)}"
        self._tmp = tempfile.TemporaryDirectory(prefix="failover-proxy-")
        if isinstance(config, dict):
            self.config_path = Path(self._tmp.name) / "config.yaml"
            self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        else:
            self.config_path = Path(config)
        self.log_path = Path(log_path) if log_path else Path(self._tmp.name) / "proxy.log"
        self._env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            **(env or {}),
            "LITELLM_MASTER_KEY": self.master_key,
        }
        self._workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """What a client sends to be let in: the proxy's master key."""
        return {"Authorization": f"Bearer {self.master_key}"}

    def start(self, timeout_s: float = 90.0) -> ProxyProcess:
        cmd = [*litellm_command(), "--config", str(self.config_path), "--host", HOST, "--port", str(self.port)]
        if self._workers > 1:
            cmd += ["--num_workers", str(self._workers)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - the process writes to it until stop()
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self._env)
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"proxy exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health/liveliness", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass  # not listening yet: that is what we are waiting for
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"proxy not ready after {timeout_s}s:\n{self.log_tail()}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_failures(self, most: int = 3) -> str:
        """The first few "Exception in ASGI application" reports of the log, 40 lines each (uvicorn
        writes one when the app fails; if the response had started it then closes the connection,
        which the client sees as a disconnect without a response)."""
        lines = self.log_text().splitlines()
        starts = [i for i, line in enumerate(lines) if "Exception in ASGI application" in line][:most]
        return "\n".join("\n".join(lines[i : i + 40]) for i in starts)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rss_mb(self) -> float | None:
        """Resident memory of the proxy process, from /proc (Linux)."""
        if self.process is None:
            return None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            # a test failed while this proxy ran: what it logged goes with the failure report
            # (pytest shows a failed test's stderr), as the log is deleted with the temp dir
            print(f"--- proxy on port {self.port}: {self.log_failures() or 'no ASGI exception logged'}", file=sys.stderr)
            print(f"--- its log, last lines:\n{self.log_tail(80)}", file=sys.stderr)
        self.close()
