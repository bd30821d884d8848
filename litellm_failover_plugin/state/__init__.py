"""Where breaker state lives: one protocol, a memory store and a Redis store."""

from .base import StateStore, decode, encode
from .memory import MemoryStore

__all__ = ["MemoryStore", "StateStore", "decode", "encode"]
