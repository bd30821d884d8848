"""LiteLLM's HTTP transport, as streams need it: chunks an upstream sent before it cut the
connection reach the client; LiteLLM's first-call imports are done before the first call.

LiteLLM reads streamed responses through its aiohttp transport (`AiohttpResponseStream`, which
iterates `ClientResponse.content.iter_chunked`). aiohttp's `StreamReader.read` raises the
connection's error as soon as one is recorded, before returning the bytes already buffered: a
chunk that arrived just before the cut is dropped whenever the reader was busy when the two
arrived (a cold process, other streams, a slow client). Plain LiteLLM loses it the same way
(tests/integration/test_stream_chunks.py measures both).

`install()` makes each response's reader hand out what it buffered first, then raise: every
chunk the upstream sent is delivered, then the stream fails as before. It changes nothing else,
and nothing when aiohttp or LiteLLM moved the internals it relies on (logged once).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger("litellm_failover_plugin")

_MARK = "_failover_buffered_first"


class _Content:
    """An aiohttp StreamReader whose chunks come out buffered-first: once the connection's
    error is recorded, the bytes already received are read before it is raised."""

    def __init__(self, content: Any) -> None:
        self._content = content

    def __getattr__(self, name: str) -> Any:
        return getattr(self._content, name)

    async def read(self, n: int = -1) -> bytes:
        c = self._content
        buffer = getattr(c, "_buffer", None)
        if getattr(c, "_exception", None) is not None and buffer:
            data = b"".join(buffer)
            buffer.clear()
            return data
        return await c.read(n)  # type: ignore[no-any-return]

    def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        size = getattr(self._content, "set_read_chunk_size", None)  # as aiohttp's own iter_chunked
        if size is not None:
            size(n)
        return self._chunks(n)

    async def _chunks(self, n: int) -> AsyncIterator[bytes]:
        while chunk := await self.read(n):
            yield chunk


class _Response:
    """An aiohttp ClientResponse whose `content` is read buffered-first; the rest is its own."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.content = _Content(response.content)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._response.__aexit__(*exc)


def install() -> bool:
    """Patch LiteLLM's aiohttp response stream (once per process). False when it could not."""
    try:
        from litellm.llms.custom_httpx.aiohttp_transport import AiohttpResponseStream
    except ImportError:
        log.info("failover streams: LiteLLM's aiohttp transport not found; chunks before a cut may be lost")
        return False
    if getattr(AiohttpResponseStream, _MARK, False):
        return True
    init = AiohttpResponseStream.__init__

    def __init__(self: Any, aiohttp_response: Any) -> None:
        content = getattr(aiohttp_response, "content", None)
        known = content is not None and hasattr(content, "_buffer") and hasattr(content, "_exception")
        init(self, _Response(aiohttp_response) if known else aiohttp_response)  # type: ignore[arg-type]

    AiohttpResponseStream.__init__ = __init__  # type: ignore[method-assign]
    setattr(AiohttpResponseStream, _MARK, init)
    return True


def uninstall() -> None:
    """LiteLLM's own behaviour back (tests compare with it)."""
    from litellm.llms.custom_httpx.aiohttp_transport import AiohttpResponseStream

    init = getattr(AiohttpResponseStream, _MARK, None)
    if init:
        AiohttpResponseStream.__init__ = init  # type: ignore[method-assign]
        setattr(AiohttpResponseStream, _MARK, None)


# what LiteLLM imports on its first upstream calls (1.4-2.3 s before the first request left a cold
# process, measured on a 2-core machine; 0.06 s once these are imported): imported when routes
# are installed, so that first_chunk_s, which runs from the call, measures the upstream
_FIRST_CALL_IMPORTS = (
    "openai.resources",
    "openai.lib.streaming.chat",
    "litellm.litellm_core_utils.default_encoding",
    "litellm.router_utils.baseline_request",
)


def warm_up() -> None:
    for name in _FIRST_CALL_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception as e:  # a module LiteLLM moved: only the first call is slower
            log.debug("failover: warm-up import of %s failed: %s", name, type(e).__name__)
