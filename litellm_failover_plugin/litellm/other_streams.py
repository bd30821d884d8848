"""`/v1/messages` and `/v1/responses` streams on a route after their first chunk: a gap over
`between_chunks_s` ends them, and a failure after the first chunk (a stall, a cut, an error event)
counts against the deployment like a chat stream's; the stream ends with an error in its own
format. Not continued.

LiteLLM's router hands both back in a wrapper whose `_async_generator` yields the chunks (Anthropic
SSE bytes for messages, Responses event objects for responses); `watch` replaces it.
A messages stream gets an Anthropic `error` event; a responses stream raises, which the proxy
turns into a `response.failed` event (as it does for LiteLLM's own errors).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..breaker import Signal, signal_of
from ..routing import Candidate, FailoverRun
from ..streaming import INTERRUPTED_TYPE, Fault, counts_against, stream_failure
from .streams import StreamInterrupted
from .translate import classify

if TYPE_CHECKING:
    from ..decisions import Snapshot
    from .runner import FailoverRunner

log = logging.getLogger("litellm_failover_plugin")


def supports(response: Any) -> bool:
    """A stream in the router's wrapper (chat streams have theirs: streams.py)."""
    return hasattr(response, "_async_generator")


def _error_event(chunk: Any) -> str | None:
    """The message of an Anthropic error event LiteLLM put in a messages stream, else None."""
    if isinstance(chunk, (bytes, bytearray)) and chunk.startswith(b"event: error"):
        return bytes(chunk).decode(errors="replace").partition("data:")[2].strip()[:300] or "error event"
    return None


def watch(runner: FailoverRunner, run: FailoverRun, snap: Snapshot, candidate: Candidate, response: Any, t0: float) -> Any:
    """Put the watcher in front of the stream's chunks."""
    gen = response._async_generator
    messages = "Anthropic" in type(response).__name__  # LiteLLM's FallbackAwareAnthropicMessagesStream
    watched = _chunks(runner, run, snap, candidate, gen, messages, (runner.clock() - t0) * 1000)
    response._async_generator = watched
    return response


async def _chunks(
    runner: FailoverRunner, run: FailoverRun, snap: Snapshot, c: Candidate, gen: Any, messages: bool, latency_ms: float
) -> AsyncIterator[Any]:
    hid, chunks = c.health_id, 0
    timeouts = runner.stream_timeouts(c)
    runner.open_streams += 1
    try:
        while True:
            limit = timeouts.next_wait(chunks > 0)
            failure, fault = None, None
            try:
                async with asyncio.timeout(limit) as cm:
                    chunk = await gen.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                if not cm.expired():
                    raise
                fault = Fault.STALL
                failure = stream_failure(fault, chunks, after_s=limit)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                cause = classify(exc, runner._redact)
                fault = Fault.CUT if cause.kind is not None else Fault.ERROR
                failure = stream_failure(fault, chunks, cause)
            if failure is None:
                event = _error_event(chunk) if messages else None
                if event is None:
                    chunks += 1
                    yield chunk
                    continue
                fault = Fault.ERROR_EVENT
                failure = stream_failure(fault, chunks, classify(RuntimeError(event), runner._redact))
            assert fault is not None
            counted = counts_against(failure)
            if counted:
                runner._observe(hid, False, None)
            await runner.report(hid, signal_of(failure, counted), snap.breakers.get(hid), failure.retry_after_s)
            run.interrupted(c, failure)
            attempts = ", ".join(a.summary() for a in run.attempts)
            message = (
                f"stream of route {run.plan.name!r} interrupted: {c.element}/{c.key} failed mid-stream "
                f"({failure.label}: {failure.reason}); not continued: only chat completion streams are; attempts: {attempts}"
            )
            log.warning("failover stream route=%s deployment=%s key=%s: %s", run.plan.name, c.deployment_id, c.key, message)
            if messages:  # an Anthropic error event, and the stream ends
                body = {"type": "error", "error": {"type": INTERRUPTED_TYPE, "message": message}}
                yield f"event: error\ndata: {json.dumps(body)}\n\n".encode()
                return
            raise StreamInterrupted(message)
        runner._observe(hid, True, latency_ms)  # call to first chunk, as for chat streams
        await runner.report(hid, Signal.SUCCESS, snap.breakers.get(hid))
    finally:
        runner.open_streams -= 1
        try:
            await gen.aclose()
        except BaseException as e:  # closing what already failed: nothing more to learn from it
            log.debug("failover stream: closing an upstream stream: %s", type(e).__name__)
