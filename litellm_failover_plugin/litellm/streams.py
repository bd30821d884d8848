"""Reading a route's chat completion stream: first-chunk and between-chunk timeouts, mid-stream
failures reported to the breaker and scores, and the error event or the continuation on the
next candidate. The decisions are in ..streaming; this file does the waiting and the chunks.

LiteLLM's router hands back a stream wrapper whose `_async_generator` yields the chunks (see
`Router._acompletion_streaming_iterator`). `open_stream` reads it up to the first chunk with
content, so an empty or slow stream still falls over unseen; `Supervised` then replaces the
wrapper's generator with one that watches every further chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import litellm
import openai

from ..breaker import Signal, signal_of
from ..conditions import Failure, Kind, falls_over
from ..continuation import Reconciler, Verdict
from ..instrumentation import AttemptMade
from ..routing import Candidate, FailoverRun
from ..streaming import (
    INTERRUPTED_TYPE,
    Action,
    Fault,
    Part,
    Progress,
    StreamFailed,
    Usage,
    after_failure,
    counts_against,
    fault_of,
    interrupted_message,
    mid_stream_for,
    served_by,
    stream_failure,
)
from . import adapter, selfcheck
from .translate import Redactor, _chain, classify, total_tokens

if TYPE_CHECKING:
    from ..decisions import Snapshot
    from .runner import FailoverRunner

log = logging.getLogger("litellm_failover_plugin")

FIELD = "failover"  # provider_specific_fields.failover on a continued stream's last chunk(s)


class Diverged(Exception):
    """A continuation's text cannot be joined to the answer the client has (continuation.py)."""


class StreamInterrupted(Exception):
    """Ends the client's stream: the proxy turns it into one OpenAI-shaped error event."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.type = INTERRUPTED_TYPE
        self.param = None
        self.status_code = 502


@dataclass
class Opened:
    """A stream read up to its first content chunk."""

    response: Any  # LiteLLM's stream wrapper, handed to the proxy
    gen: AsyncIterator[Any]  # the rest of its chunks
    held: list[Any]  # the chunks read so far, in order, the first content chunk last
    progress: Progress
    inner: Any  # LiteLLM's CustomStreamWrapper underneath (knows whether a finish_reason came), or None
    latency_ms: float | None = None  # call to first content chunk


def supports(response: Any, original_function: Callable[..., Any]) -> bool:
    """Chat completion streams are supervised; other endpoints keep first-chunk failover."""
    if getattr(original_function, "__name__", "") != "_acompletion":
        return False
    if hasattr(response, "_async_generator"):
        return True
    if hasattr(response, "__aiter__"):  # a chat stream not in the router's wrapper: LiteLLM moved
        selfcheck.stream_unwrapped(response)
    return False


def _info(chunk: Any) -> tuple[str, bool, bool, str | None]:
    """(content, reasoning?, tool calls?, finish_reason) of one chunk."""
    content, reasoning, tools, finish = "", False, False, None
    for choice in getattr(chunk, "choices", None) or ():
        delta = getattr(choice, "delta", None)
        if delta is not None:
            content += getattr(delta, "content", None) or ""
            reasoning = reasoning or bool(getattr(delta, "reasoning_content", None))
            tools = tools or bool(getattr(delta, "tool_calls", None) or getattr(delta, "function_call", None))
        finish = finish or getattr(choice, "finish_reason", None)
    return content, reasoning, tools, finish


def _failure_of(exc: BaseException, progress: Progress, redact: Redactor) -> tuple[Failure, Fault]:
    if isinstance(exc, StreamFailed):
        return exc.failure, exc.fault
    if adapter.ended_unfinished(exc):  # LiteLLM 1.109 raises where earlier releases made a finish up
        return stream_failure(Fault.UNFINISHED, progress.chunks), Fault.UNFINISHED
    cause = classify(exc, redact)
    chain = _chain(exc)
    malformed = any(isinstance(e, json.JSONDecodeError) for e in chain)
    # the openai SDK raises APIError(body=<the event's error>) on an in-stream error event
    bodies = [e.body for e in chain if isinstance(e, openai.APIError) and not isinstance(e, openai.APIStatusError)]
    body = next((b for b in bodies if isinstance(b, dict)), None)
    if body is not None and str(body.get("code", "")).isdigit() and 100 <= int(body["code"]) <= 599:
        cause = Failure(int(body["code"]), cause.kind if cause.kind is Kind.QUOTA else None, cause.reason)
    fault = fault_of(cause, malformed, body is not None)
    return stream_failure(fault, progress.chunks, cause), fault


async def open_stream(response: Any, limit: float | None, redact: Redactor, after_s: float | None = None) -> Opened:
    """Read up to the first chunk with content, within `limit` seconds (what is left of
    first_chunk_s, which is `after_s`). Raises StreamFailed (timeout, empty, broken)."""
    gen = response._async_generator
    held: list[Any] = []
    progress = Progress()
    try:
        async with asyncio.timeout(limit) as cm:
            while not progress.has_content:
                try:
                    chunk = await gen.__anext__()
                except StopAsyncIteration:
                    raise StreamFailed(stream_failure(Fault.EMPTY, 0), Fault.EMPTY, 0) from None
                held.append(chunk)
                progress.see(*_info(chunk))
    except TimeoutError:
        await _close(gen)
        if not cm.expired():
            raise
        fault = Fault.FIRST_CHUNK_TIMEOUT
        raise StreamFailed(stream_failure(fault, 0, after_s=after_s if after_s is not None else limit), fault, 0) from None
    except StreamFailed:
        await _close(gen)
        raise
    except BaseException as exc:
        await _close(gen)
        if isinstance(exc, Exception) and not isinstance(exc, asyncio.CancelledError):
            failure, fault = _failure_of(exc, progress, redact)
            if fault is not Fault.ERROR:  # a broken stream falls over; a plain error keeps its own way
                raise StreamFailed(failure, fault, 0) from exc
        raise
    return Opened(response, gen, held, Progress(), adapter.inner_stream(gen))


async def _close(gen: Any) -> None:
    try:
        await gen.aclose()
    except BaseException as e:  # closing what already failed: nothing more to learn from it
        log.debug("failover stream: closing an upstream stream: %s", type(e).__name__)


@dataclass
class StreamContext:
    """What a continuation needs: the request's walk, and how to make one more attempt."""

    run: FailoverRun
    snap: Snapshot
    original_function: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deadline: float | None
    parts: list[Part] = field(default_factory=list)
    text: str = ""  # everything the client received so far
    usage: Usage = field(default_factory=Usage)  # of the parts before the current one


class Supervised:
    """The client's stream of one request: every part, watched; failures reported and handled."""

    def __init__(self, runner: FailoverRunner, ctx: StreamContext, opened: Opened, candidate: Candidate):
        self.runner = runner
        self.ctx = ctx
        self.current = (opened, candidate)
        self.first_id: str | None = None
        self.part_tokens: int | None = None  # the current part's usage, if a chunk carried it

    def install(self) -> Any:
        response = self.current[0].response
        gen = self.chunks()
        response._async_generator = gen
        response.completion_stream = gen  # so the proxy's aclose() reaches it
        return response

    async def chunks(self) -> AsyncIterator[Any]:
        runner = self.runner
        runner.open_streams += 1
        try:
            while True:
                opened, candidate = self.current
                failed: StreamFailed | None = None
                try:
                    async for chunk in self._part(opened, candidate):
                        yield chunk
                except StreamFailed as e:
                    failed = e
                except Diverged as diverged:
                    await self._close_part(opened)
                    self._diverged(opened, candidate, str(diverged))
                await self._close_part(opened)
                if failed is not None:  # handled outside the except: the continuation's own
                    await self._failed(opened, candidate, failed)  # errors must not chain to this one
                    continue
                hid = candidate.health_id
                runner._observe(hid, True, opened.latency_ms)
                await runner.report(hid, Signal.SUCCESS, self.ctx.snap.breakers.get(hid))
                if candidate.limits.tpm is not None:  # counting a stream's tokens locally costs CPU
                    await runner.count_tokens(candidate, self._tokens(opened))
                return
        finally:
            runner.open_streams -= 1
            await self._close_part(self.current[0])

    def _tokens(self, opened: Opened) -> int:
        """A finished part's tokens: its usage chunk's, else counted here (most streams send none)."""
        if self.part_tokens is not None:
            return self.part_tokens
        return _usage_of(opened, opened.progress, self.ctx.kwargs).total_tokens

    async def _close_part(self, opened: Opened) -> None:
        await _close(opened.gen)

    async def _part(self, opened: Opened, candidate: Candidate) -> AsyncIterator[Any]:
        """One upstream call's chunks, as the client gets them. Raises StreamFailed."""
        progress = opened.progress
        continued = bool(self.ctx.parts)
        timeouts = self.runner.stream_timeouts(candidate)
        pending = list(opened.held)
        opened.held.clear()
        self.part_tokens = None
        fit = Reconciler(self.ctx.text) if continued else None  # what of a continuation the client gets
        while True:
            if pending:
                chunk = pending.pop(0)
            else:
                left = self.ctx.deadline - self.runner.clock() if self.ctx.deadline is not None else None
                limit = timeouts.next_wait(True, left)
                try:
                    async with asyncio.timeout(limit) as cm:
                        chunk = await opened.gen.__anext__()
                except StopAsyncIteration:
                    if not progress.finished and opened.inner is not None:
                        raise StreamFailed(stream_failure(Fault.UNFINISHED, progress.chunks), Fault.UNFINISHED, progress.chunks) from None
                    if fit is not None:
                        fit.end()  # it ended without a finish chunk LiteLLM could see
                        if fit.verdict is Verdict.DIVERGED:
                            raise Diverged(fit.why) from None
                    return
                except TimeoutError:
                    if not cm.expired():
                        raise
                    failure = stream_failure(Fault.STALL, progress.chunks, after_s=limit)
                    raise StreamFailed(failure, Fault.STALL, progress.chunks) from None
                except (asyncio.CancelledError, StreamFailed):
                    raise
                except Exception as exc:
                    failure, fault = _failure_of(exc, progress, self.runner._redact)
                    raise StreamFailed(failure, fault, progress.chunks) from exc
            content, reasoning, tools, finish = _info(chunk)
            if finish and opened.inner is not None and not _upstream_finished(opened.inner):
                # LiteLLM made this finish chunk up: the upstream ended without one
                raise StreamFailed(stream_failure(Fault.UNFINISHED, progress.chunks), Fault.UNFINISHED, progress.chunks)
            progress.see(content, reasoning, tools, finish)
            progress.chunks += 1
            if fit is not None:
                fitted = self._fitted(chunk, fit, content, finish)
                if fitted is None:
                    continue  # held back: it repeats what the client has
                chunk, content = fitted
            self.ctx.text += content
            if self.first_id is None:
                self.first_id = getattr(chunk, "id", None)
            self.part_tokens = total_tokens(chunk) or self.part_tokens
            if getattr(chunk, "model", None) != candidate.model and hasattr(chunk, "model_copy"):
                # who served this chunk, not the route's name; a copy: LiteLLM prices the stream
                # from the chunks it kept, with the provider's model name (as the proxy does)
                chunk = chunk.model_copy(update={"model": candidate.model})
            if continued:
                self._as_continuation(chunk, finish)
            yield chunk

    @staticmethod
    def _fitted(chunk: Any, fit: Reconciler, content: str, finish: str | None) -> tuple[Any, str] | None:
        """A continuation's chunk with only the text the client does not have yet (a copy when
        that changes its content: LiteLLM prices the stream from the chunks it kept), and that
        text; None to hold the chunk back. Raises Diverged (nothing spliced)."""
        sent = fit.feed(content) if content else ""
        if finish:
            sent += fit.end()
        if fit.verdict is Verdict.DIVERGED:
            raise Diverged(fit.why)
        if not sent and not finish and getattr(chunk, "usage", None) is None and fit.verdict is Verdict.PENDING:
            return None
        if sent != content and hasattr(chunk, "model_copy"):
            chunk = chunk.model_copy(deep=True)
            for choice in getattr(chunk, "choices", None) or ():
                delta = getattr(choice, "delta", None)
                if delta is not None:
                    delta.content = sent or None
        return chunk, sent

    def _as_continuation(self, chunk: Any, finish: str | None) -> None:
        """A continuation's chunk, made part of the answer the client has: same id, no second
        role; the final usage adds every part's; the last chunk(s) say who served."""
        if self.first_id is not None:
            chunk.id = self.first_id
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            if delta is not None and getattr(delta, "role", None) is not None:
                delta.role = None
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            for name in ("prompt_tokens", "completion_tokens"):
                setattr(usage, name, (getattr(usage, name, 0) or 0) + getattr(self.ctx.usage, name))
            usage.total_tokens = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
        if finish or usage is not None:
            opened, candidate = self.current
            parts = [*self.ctx.parts, _part(candidate, opened.progress.chunks, "complete")]
            extra = getattr(chunk, "provider_specific_fields", None) or {}
            chunk.provider_specific_fields = {**extra, FIELD: served_by(self.ctx.run.plan.name, parts)}

    async def _failed(self, opened: Opened, candidate: Candidate, failed: StreamFailed) -> None:
        """Report a mid-stream failure; continue on the next candidate, or raise the error event."""
        runner, ctx = self.runner, self.ctx
        id, failure, progress = candidate.deployment_id, failed.failure, opened.progress
        hid = candidate.health_id
        counted = counts_against(failure)
        if counted:
            runner._observe(hid, False, None)
        await runner.report(hid, signal_of(failure, counted), ctx.snap.breakers.get(hid), failure.retry_after_s)
        ctx.run.interrupted(candidate, failure)
        if runner.hooks:  # counted a success when it opened; now also an interrupted attempt
            runner.emit(AttemptMade.of(candidate, "interrupted"))
        ctx.parts.append(_part(candidate, progress.chunks, failed.fault.value))
        ctx.usage = ctx.usage + _usage_of(opened, progress, ctx.kwargs)
        mode, limit = mid_stream_for(runner.settings, ctx.run.plan.name)
        used = len(ctx.parts) - 1
        n = ctx.kwargs.get("n")
        choices = n if isinstance(n, int) and not isinstance(n, bool) else 1
        action, why = after_failure(mode, failure, progress, falls_over(failure, candidate.falls_over), used, limit, choices)
        log.warning(
            "failover stream route=%s deployment=%s key=%s failed mid-stream after %d chunk(s) (%s): %s; %s",
            ctx.run.plan.name, id, candidate.key, progress.chunks, failure.label, failure.reason,
            "continuing on the next candidate" if action is Action.CONTINUE else f"ending the stream ({why})",
        )  # fmt: skip
        if action is Action.CONTINUE:
            nxt = await runner.continue_stream(ctx)  # in the form each candidate takes (attempts.py)
            if nxt is not None:
                self.current = nxt
                ncand = nxt[1]
                log.info(
                    "failover stream route=%s continued on deployment=%s key=%s after %d chunk(s) of the answer",
                    ctx.run.plan.name, ncand.deployment_id, ncand.key, sum(p.chunks for p in ctx.parts),
                )  # fmt: skip
                return
            why = "no candidate left to continue on"
        attempts = ", ".join(a.summary() for a in ctx.run.attempts)
        raise StreamInterrupted(interrupted_message(ctx.run.plan.name, f"{candidate.element}/{candidate.key}", failure, why, attempts))


    def _diverged(self, opened: Opened, candidate: Candidate, why: str) -> NoReturn:
        """A continuation wrote another answer: the stream ends with the error event, not a
        spliced text. The candidate answered; the answer does not fit (it is not counted)."""
        ctx = self.ctx
        ctx.parts.append(_part(candidate, opened.progress.chunks, "diverged"))
        log.warning(
            "failover stream route=%s: the continuation on deployment=%s key=%s does not fit the answer (%s); ending the stream",
            ctx.run.plan.name, candidate.deployment_id, candidate.key, why,
        )  # fmt: skip
        attempts = ", ".join(a.summary() for a in ctx.run.attempts)
        raise StreamInterrupted(
            f"stream of route {ctx.run.plan.name!r} interrupted: the continuation on {candidate.element}/{candidate.key} "
            f"does not fit the answer the client has ({why}); not spliced into it; attempts: {attempts}"
        )


def _upstream_finished(inner: Any) -> bool:
    return bool(getattr(inner, "received_finish_reason", None) or getattr(inner, "intermittent_finish_reason", None))


def _part(c: Candidate, chunks: int, outcome: str) -> Part:
    return Part(c.backend, c.model, c.key, chunks, outcome)


def _usage_of(opened: Opened, progress: Progress, kwargs: dict[str, Any]) -> Usage:
    """What a broken part cost: the tokens counted locally (it sent no usage of its own)."""
    try:
        prompt = litellm.token_counter(model="", messages=kwargs.get("messages") or [])
        completion = litellm.token_counter(model="", text=progress.text) if progress.text else 0
    except Exception:  # counting is best effort; the answer matters more
        return Usage()
    return Usage(int(prompt), int(completion))

