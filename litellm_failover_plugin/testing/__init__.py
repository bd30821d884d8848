"""Local stand-ins for tests, the demo and the benchmarks: fake upstreams and proxy processes.

Everything here listens on and talks to 127.0.0.1 only.
"""

from .fake_upstream import Behavior, FakeUpstream, Received
from .proxy import ProxyProcess, free_port

__all__ = ["Behavior", "FakeUpstream", "ProxyProcess", "Received", "free_port"]
