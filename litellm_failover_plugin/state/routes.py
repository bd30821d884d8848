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

A store that cannot be read or written (garbage in the file, a directory in its place, a Redis
key that is not an overlay) raises `StoreError` naming the problem; the caller keeps serving
what it knows and refuses changes. `read()` tells "nothing stored" (None) from an empty overlay.
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


class StoreError(Exception):
    """The route store cannot be read or written; the message names the problem."""


def _overlay(raw: str | bytes | None, where: str) -> Overlay | None:
    if raw is None:
        return None
    try:
        return Overlay.from_json(raw)
    except (ValueError, TypeError) as e:
        raise StoreError(f"{where} is not a failover route overlay ({e}); move it away to start over") from None


def check_state_file(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be the state file (None: it can). Creates its directory if missing."""
    p = Path(path)
    for above in p.parents:  # the nearest one that exists must be a directory
        if above.exists():
            if not above.is_dir():
                return f"{str(above)!r}, above it, is not a directory"
            break
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create its directory {str(p.parent)!r}: {e.strerror or e}"
    if p.is_dir():
        return f"{str(p)!r} is a directory"
    if p.exists() and not os.access(p, os.R_OK | os.W_OK):
        return f"{str(p)!r} is not readable and writable by this process"
    if not os.access(p.parent, os.W_OK | os.X_OK):
        return f"cannot create files in {str(p.parent)!r} (the file is replaced atomically, beside a .lock file)"
    return None


class MemoryRouteStore:
    kind = "memory"

    def __init__(self) -> None:
        self._overlay = Overlay()
        self._lock = asyncio.Lock()

    async def read(self) -> Overlay | None:
        return self._overlay

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

    def stamp(self) -> tuple[int, ...] | None:
        """Changes whenever another process rewrites the file (or its mode); None while there is none."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as e:  # e.g. its parent is a file: read() says so
            return (-1, e.errno or 0)
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)

    def _read(self) -> Overlay | None:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise StoreError(f"the state file {str(self.path)!r} cannot be read ({why})") from None
        if not raw.strip():  # truncated: nothing stored
            return None
        return _overlay(raw, f"the state file {str(self.path)!r}")

    async def read(self) -> Overlay | None:
        return self._read()

    async def load(self) -> Overlay:
        return self._read() or Overlay()

    async def change(self, edit: Edit) -> tuple[Overlay, int]:
        """Apply `edit` under the file lock. StoreError if the file cannot be read or written;
        what `edit` raises goes through, and nothing is written."""
        async with self._lock:
            try:
                return await self._change(edit)
            except OSError as e:
                raise StoreError(
                    f"cannot write the state file {str(self.path)!r} ({e.strerror or e}); "
                    "set failover_settings.commands.state_file to a writable path"
                ) from None

    async def _change(self, edit: Edit) -> tuple[Overlay, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # other worker processes of this machine
            try:
                new = edit(self._read() or Overlay())
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
        self._epoch = prefix + "routes:epoch"

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 2.0) -> RedisRouteStore:
        return cls(redis_client(url, timeout_s))

    async def read(self) -> Overlay | None:
        return _overlay(await self._redis.get(self.key), f"the Redis key {self.key!r}")

    async def load(self) -> Overlay:
        return await self.read() or Overlay()

    async def epoch(self, fresh: str) -> str:
        """The id of this Redis's data set: set to `fresh` by the first replica that asks after
        Redis started empty (or was flushed), so a changed id tells a replica its data was lost."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._epoch, fresh, nx=True)
            pipe.get(self._epoch)
            _, current = await pipe.execute()
        return _text(current)

    async def change(self, edit: Edit) -> tuple[Overlay, int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            for attempt in range(200):
                try:
                    await pipe.watch(self.key)
                    new = edit(_overlay(await pipe.get(self.key), f"the Redis key {self.key!r}") or Overlay())
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(self.key, new.to_json())
                    pipe.publish(self.channel, str(new.version))
                    _, told = await pipe.execute()
                    return new, int(told)
                except WatchError:  # another replica changed the routes first: edit its version
                    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise RuntimeError("failover routes: too much contention on the route store")

    async def changes(self) -> AsyncIterator[tuple[str, str]]:
        """What replicas change, as it is published: ("routes", version) or ("session", id);
        ("idle", "") after a second without any."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel, self.session_channel)
        try:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None or message.get("type") != "message":
                    yield "idle", ""  # nothing for a second: the listener may look at the store
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

    async def restore_sessions(self, sessions: dict[str, tuple[str, float]]) -> int:
        """Write back sessions (sid -> (route, seconds to live)) a data loss took; one set since
        is never overwritten. How many were written."""
        if not sessions:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid, (route, ttl) in sessions.items():
                pipe.set(self.session_prefix + sid, route, ex=max(1, int(ttl)), nx=True)
            written = await pipe.execute()
        return sum(1 for w in written if w)

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
