"""Where runtime route changes (the Overlay) and `!/set` sessions are kept.

- `FileRouteStore`: one JSON file, written atomically (temp file + rename) under an exclusive
  file lock, so the processes of one machine (`--num_workers`) never lose a change. A process
  notices another's change by the file's stamp (one `stat` per request).
- `RedisRouteStore`: one key holding the whole overlay, changed in an optimistic transaction
  (WATCH / MULTI / SET / PUBLISH / EXEC). The PUBLISH in the same transaction pushes the new
  version to every replica; each replica acknowledges once it applied it, and the writer waits
  (bounded) for as many acknowledgements as there were subscribers, so when a command's reply
  reaches the client every replica already serves by it.
- `MemoryRouteStore`: one process, nothing kept (the Python API and tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import random
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from ..routetable import Overlay
from .redis import redis_client

Edit = Callable[[Overlay], Overlay]
PREFIX = "litellm_failover:"


class MemoryRouteStore:
    kind = "memory"

    def __init__(self) -> None:
        self._overlay = Overlay()
        self._lock = asyncio.Lock()

    async def load(self) -> Overlay:
        return self._overlay

    async def change(self, edit: Edit) -> tuple[Overlay, int]:
        """Apply `edit` atomically; returns the new overlay and how many replicas were told."""
        async with self._lock:
            self._overlay = edit(self._overlay)
            return self._overlay, 0


class FileRouteStore:
    kind = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock = asyncio.Lock()

    def stamp(self) -> tuple[int, int, int] | None:
        """Changes whenever another process rewrites the file; None while there is none."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> Overlay:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return Overlay()
        try:
            return Overlay.from_json(raw)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{self.path}: not a failover route state file ({e}); move it away to start over") from None

    async def load(self) -> Overlay:
        return self._read()

    async def change(self, edit: Edit) -> tuple[Overlay, int]:
        async with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._lock_path, "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # other worker processes of this machine
                try:
                    new = edit(self._read())
                    fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
                    try:
                        with os.fdopen(fd, "w") as f:
                            f.write(json.dumps(json.loads(new.to_json()), indent=2))
                            f.flush()
                            os.fsync(f.fileno())
                        os.replace(tmp, self.path)
                    except BaseException:
                        with contextlib.suppress(OSError):
                            os.unlink(tmp)
                        raise
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            return new, 0


class RedisRouteStore:
    kind = "redis"

    def __init__(self, client: aioredis.Redis, *, prefix: str = PREFIX) -> None:
        self._redis = client
        self.key = prefix + "routes"
        self.channel = prefix + "routes:changed"
        self._acks = prefix + "routes:applied:"
        self.session_prefix = prefix + "session:"
        self.session_channel = prefix + "sessions"

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 2.0) -> RedisRouteStore:
        return cls(redis_client(url, timeout_s))

    async def load(self) -> Overlay:
        return Overlay.from_json(await self._redis.get(self.key))

    async def change(self, edit: Edit) -> tuple[Overlay, int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            for attempt in range(200):
                try:
                    await pipe.watch(self.key)
                    new = edit(Overlay.from_json(await pipe.get(self.key)))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(self.key, new.to_json())
                    pipe.publish(self.channel, str(new.version))
                    _, told = await pipe.execute()
                    return new, int(told)
                except WatchError:  # another replica changed the routes first: edit its version
                    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise RuntimeError("failover routes: too much contention on the route store")

    async def changes(self) -> AsyncIterator[tuple[str, str]]:
        """What replicas change, as it is published: ("routes", version) or ("session", id)."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel, self.session_channel)
        try:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                kind = "routes" if _text(message["channel"]) == self.channel else "session"
                yield kind, _text(message["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis 8.2

    async def announce_reload(self, origin: str) -> None:
        """Tell the other replicas to re-read their own config.yaml."""
        await self._redis.publish(self.channel, f"reload:{origin}")

    async def acknowledge(self, version: int) -> None:
        key = f"{self._acks}{version}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 300)
            await pipe.execute()

    async def wait_applied(self, version: int, replicas: int, timeout_s: float, poll_s: float = 0.005) -> int:
        """Wait until `replicas` replicas applied `version` (or the time is up); how many did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            done = int(await self._redis.get(f"{self._acks}{version}") or 0)
            if done >= replicas or loop.time() >= deadline:
                return done
            await asyncio.sleep(poll_s)

    # sessions: one key each, expiring after the idle time; changes are published

    async def set_session(self, sid: str, route: str | None, ttl_s: float) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            if route is None:
                pipe.delete(self.session_prefix + sid)
            else:
                pipe.set(self.session_prefix + sid, route, ex=max(1, int(ttl_s)))
            pipe.publish(self.session_channel, sid)
            await pipe.execute()

    async def session(self, sid: str) -> str | None:
        raw = await self._redis.get(self.session_prefix + sid)
        return _text(raw) if raw is not None else None

    async def touch_session(self, sid: str, ttl_s: float) -> None:
        await self._redis.expire(self.session_prefix + sid, max(1, int(ttl_s)))

    async def sessions(self) -> dict[str, tuple[str, float]]:
        """Every live session: sid -> (route, seconds to live)."""
        out: dict[str, tuple[str, float]] = {}
        async for key in self._redis.scan_iter(match=self.session_prefix + "*", count=500):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.ttl(key)
                route, ttl = await pipe.execute()
            if route is not None:
                out[_text(key)[len(self.session_prefix) :]] = (_text(route), float(ttl))
        return out

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
