"""Breaker state in Redis, shared by every proxy replica.

Each update is one optimistic transaction (WATCH the key, compute the new breaker with the same
pure function the memory store uses, MULTI/SET/EXEC, retry if another replica got there first),
so no transition logic is duplicated in Lua. A breaker that is plainly closed is deleted; the
others expire `ttl_s` after their last change.

Each round trip waits at most `timeout_s` (a hung Redis answers nothing: the read times out),
and redis-py retries only a dropped connection, once and at once (a pooled connection that a
restarted Redis closed), never a timeout: the caller (ResilientStore) falls back instead.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import WatchError

from ..breaker import Breaker
from .base import Update, decode, encode, is_clean

PREFIX = "litellm_failover:breaker:"
USAGE_PREFIX = "litellm_failover:usage:"  # rate limits' counters (limits.py); outside PREFIX, which items() scans


def redis_client(url: str, timeout_s: float) -> aioredis.Redis:
    """A client whose every round trip waits at most `timeout_s`, retrying only a dropped
    connection, once and at once (redis-py's default retries a connection error up to 10
    times with a backoff growing to 1 s: seconds on a request's path)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


class RedisStore:
    def __init__(
        self, client: aioredis.Redis, *, ttl_s: int = 86400, prefix: str = PREFIX, usage_prefix: str = USAGE_PREFIX
    ) -> None:
        self._redis = client
        self._ttl_s = ttl_s
        self._prefix = prefix
        self._usage_prefix = usage_prefix
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 0.25, **kwargs: object) -> RedisStore:
        return cls(redis_client(url, timeout_s), **kwargs)  # type: ignore[arg-type]

    async def ping(self) -> None:
        await self._redis.ping()

    def _key(self, id: str) -> str:
        return self._prefix + id

    async def get_many(self, ids: Sequence[str]) -> list[Breaker]:
        if not ids:
            return []
        raw = await self._redis.mget([self._key(i) for i in ids])
        return [decode(r) for r in raw]

    async def update(self, id: str, fn: Update) -> tuple[Breaker, Breaker]:
        # one writer per key inside this process (one lock per deployment id, a bounded set);
        # other replicas are handled by WATCH
        async with self._locks.setdefault(id, asyncio.Lock()):
            return await self._transaction(id, fn)

    async def _transaction(self, id: str, fn: Update) -> tuple[Breaker, Breaker]:
        key = self._key(id)
        async with self._redis.pipeline(transaction=True) as pipe:
            for attempt in range(100):
                try:
                    await pipe.watch(key)
                    old = decode(await pipe.get(key))
                    new = fn(old)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if is_clean(new):
                        pipe.delete(key)
                    else:
                        pipe.set(key, encode(new), ex=self._ttl_s)
                    await pipe.execute()
                    return old, new
                except WatchError:
                    await asyncio.sleep(random.uniform(0, 0.001 * min(attempt + 1, 10)))
        raise RuntimeError(f"breaker {id}: too much contention on {key}")

    async def items(self) -> dict[str, Breaker]:
        out: dict[str, Breaker] = {}
        async for key in self._redis.scan_iter(match=self._prefix + "*", count=500):
            raw = await self._redis.get(key)
            if raw is not None:
                name = key.decode() if isinstance(key, bytes) else key
                out[name[len(self._prefix) :]] = decode(raw)
        return out

    async def add(self, counts: Sequence[tuple[str, int]], ttl_s: int) -> list[int]:
        """INCRBY and EXPIRE of each counter in one MULTI/EXEC: one round trip."""
        if not counts:
            return []
        async with self._redis.pipeline(transaction=True) as pipe:
            for key, n in counts:
                pipe.incrby(self._usage_prefix + key, n)
                pipe.expire(self._usage_prefix + key, ttl_s)
            done = await pipe.execute()
        return [int(v) for v in done[::2]]

    async def counts(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        raw = await self._redis.mget([self._usage_prefix + k for k in keys])
        return [int(r) if r is not None else 0 for r in raw]

    @property
    def channel(self) -> str:
        return self._prefix + "recovered"

    async def publish_recovery(self, id: str) -> None:
        """Tell every replica that a deployment is back (so their queues wake at once)."""
        await self._redis.publish(self.channel, id)

    async def recoveries(self) -> AsyncIterator[str]:
        """Deployment ids that any replica saw recover, as they come."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel)
        try:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    yield data.decode() if isinstance(data, bytes) else str(data)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis 8.2

    async def aclose(self) -> None:
        await self._redis.aclose()
