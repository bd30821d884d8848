"""The proxy's worker processes (`litellm --num_workers N`): how many, and the start-up warning
that without Redis each keeps its own breakers, stats and queues."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger("litellm_failover_plugin")


def proxy_workers(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """How many worker processes the proxy runs. `litellm --num_workers N` exports NUM_WORKERS
    (1.104 and later); before, a worker still has the proxy's command line (uvicorn spawns its
    workers through multiprocessing, which hands `sys.argv` on)."""
    argv = sys.argv if argv is None else argv
    value = (os.environ if env is None else env).get("NUM_WORKERS")
    for n, arg in enumerate(argv):
        if arg.startswith("--num_workers="):
            value = value or arg.partition("=")[2]
        elif arg == "--num_workers" and n + 1 < len(argv):
            value = value or argv[n + 1]
    try:
        return max(1, int(value or "1"))
    except ValueError:
        return 1


def warn_if_workers() -> None:
    """Without Redis, say at start-up (once per worker) that the state is per worker."""
    n = proxy_workers()
    if n > 1:
        log.warning(
            "failover: %d worker processes (--num_workers) and no Redis: breaker state, stats and queues "
            "are per worker (worker pid %d): each worker finds a dead key by itself, and /failover/status "
            "shows the worker that answered (its `worker`). Set failover_settings.redis_url to share breakers",
            n,
            os.getpid(),
        )
