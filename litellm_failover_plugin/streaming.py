"""Streams that fail after their 200: what the failure counts as, whether to continue, and what
to send the next candidate.

Pure: no litellm, no HTTP, no clock. The LiteLLM glue (litellm/streams.py) reads the chunks,
measures the gaps, and asks these functions what a failure is and what to do about it.

The life of a streamed attempt:
- until its first content chunk (text, reasoning or a tool call) nothing reaches the client: a
  failure, a `first_chunk_s` timeout or a stream that ends empty falls over like any failed call;
- after it, a failure (a cut or reset connection, a gap over `between_chunks_s`, a malformed
  chunk, an error event, an end without a finish_reason) is a *mid-stream* failure: counted
  against the deployment, then either an error event for the client (`mid_stream: error`) or
  a continuation of the same answer on the next candidate (`mid_stream: continue`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .conditions import Failure, Kind
from .config import FailoverSettings

INTERRUPTED_TYPE = "failover_stream_interrupted"


class Fault(enum.Enum):
    """What went wrong with a stream after the upstream's 200."""

    FIRST_CHUNK_TIMEOUT = "first_chunk_timeout"  # no content chunk within first_chunk_s
    EMPTY = "empty"  # ended without content or a tool call
    CUT = "cut"  # connection closed or reset
    STALL = "stall"  # a gap longer than between_chunks_s (or the call's own read timeout)
    MALFORMED = "malformed"  # a chunk that could not be parsed
    ERROR_EVENT = "error_event"  # the upstream sent an error inside the stream
    UNFINISHED = "unfinished"  # ended cleanly but without a finish_reason / [DONE]
    ERROR = "error"  # any other error while reading


class StreamFailed(Exception):
    """A stream failed; `failure` is what it counts as for breakers, scores and fall-over lists."""

    def __init__(self, failure: Failure, fault: Fault, chunks: int) -> None:
        super().__init__(failure.reason)
        self.failure = failure
        self.fault = fault
        self.chunks = chunks


def stream_failure(fault: Fault, chunks: int, cause: Failure | None = None, after_s: float | None = None) -> Failure:
    """The Failure a stream fault counts as.

    Timeouts count as `timeout`, cuts and resets as `network`; an error event keeps the status
    the upstream put in it (a 429 in the stream is a rate limit); anything else without a status
    is `stream`. All of them fall over, whatever the lists say: there is no answer to hand back.
    """
    where = f"after {chunks} chunk(s)" if fault not in (Fault.FIRST_CHUNK_TIMEOUT, Fault.EMPTY) else "before any content"
    detail = {
        Fault.FIRST_CHUNK_TIMEOUT: f"no first chunk within {after_s:g}s" if after_s is not None else "no first chunk in time",
        Fault.EMPTY: "the stream ended empty (no content, no tool call)",
        Fault.STALL: f"no chunk for {after_s:g}s" if after_s is not None else "the stream stalled",
        Fault.UNFINISHED: "the stream ended without a finish_reason",
    }.get(fault, "")
    cause_reason = cause.reason if cause is not None else ""
    reason = f"stream {fault.value} {where}: " + "; ".join(x for x in (detail, cause_reason) if x)
    reason = reason.rstrip(": ")
    if fault in (Fault.FIRST_CHUNK_TIMEOUT, Fault.STALL):
        return Failure(None, Kind.TIMEOUT, reason)
    if fault is Fault.CUT:
        return Failure(None, Kind.NETWORK, reason)
    if cause is not None and cause.status is not None and fault in (Fault.ERROR_EVENT, Fault.ERROR):
        return Failure(cause.status, cause.kind, reason, cause.retry_after_s)
    if cause is not None and cause.kind in (Kind.TIMEOUT, Kind.NETWORK) and fault is Fault.ERROR:
        return Failure(None, cause.kind, reason)
    return Failure(None, Kind.STREAM, reason)


def fault_of(cause: Failure, malformed: bool, error_event: bool) -> Fault:
    """The fault an exception raised while reading a stream stands for (`cause` is its Failure)."""
    if malformed:  # LiteLLM reports both as connection errors: look at what happened first
        return Fault.MALFORMED
    if error_event:
        return Fault.ERROR_EVENT
    if cause.kind is Kind.TIMEOUT:
        return Fault.STALL
    if cause.kind is Kind.NETWORK:
        return Fault.CUT
    return Fault.ERROR


def counts_against(failure: Failure) -> bool:
    """Whether a mid-stream failure is the deployment's fault: everything but a client error."""
    s = failure.status
    return s is None or s in (408, 429) or s >= 500


@dataclass
class Progress:
    """What the client has received of one part (one upstream call) of a stream."""

    chunks: int = 0
    text: str = ""
    reasoning: bool = False
    tool_calls: bool = False
    finished: bool = False  # a finish_reason arrived

    def see(self, content: str, reasoning: bool, tool_calls: bool, finish: str | None) -> None:
        self.text += content
        self.reasoning = self.reasoning or reasoning
        self.tool_calls = self.tool_calls or tool_calls
        self.finished = self.finished or bool(finish)

    @property
    def has_content(self) -> bool:
        return bool(self.text) or self.reasoning or self.tool_calls


@dataclass(frozen=True, slots=True)
class Timeouts:
    first_chunk_s: float | None = None
    between_chunks_s: float | None = None

    def next_wait(self, started: bool, left_s: float | None = None) -> float | None:
        """How long to wait for the next chunk: the applicable timeout, never past the request's
        own deadline (`left_s`); None = no limit of ours."""
        own = self.between_chunks_s if started else self.first_chunk_s
        if own is None:
            return left_s
        return own if left_s is None else min(own, left_s)


def timeouts_for(settings: FailoverSettings, route: str, element_index: int) -> Timeouts:
    """An element's stream timeouts: each field from the element, else the route, else defaults.
    0 means no limit (so an element can switch off its route's)."""
    r = settings.routes[route]
    layers = [r.elements[element_index].stream_timeouts, r.stream_timeouts, settings.defaults.stream_timeouts]

    def pick(field: str) -> float | None:
        for layer in layers:
            value = getattr(layer, field) if layer is not None else None
            if value is not None:
                return float(value) or None
        return None

    return Timeouts(pick("first_chunk_s"), pick("between_chunks_s"))


def mid_stream_for(settings: FailoverSettings, route: str) -> tuple[str, int]:
    """A route's `mid_stream` mode and `max_continuations`, the defaults' where it sets none."""
    r, d = settings.routes[route], settings.defaults
    mode = r.mid_stream if r.mid_stream is not None else d.mid_stream
    limit = r.max_continuations if r.max_continuations is not None else d.max_continuations
    return mode, limit


class Action(enum.Enum):
    ERROR = "error"  # end the client's stream with an error event
    CONTINUE = "continue"  # continue the answer on the next candidate


def after_failure(
    mode: str,
    failure: Failure,
    progress: Progress,
    falls_over: bool,
    continuations: int,
    max_continuations: int,
    choices: int = 1,
) -> tuple[Action, str]:
    """What to do about a mid-stream failure, and why not continue when the answer is ERROR."""
    if mode != "continue":
        return Action.ERROR, "mid_stream: error"
    if choices > 1:
        return Action.ERROR, f"the request asked for n={choices} choices (only single-choice streams are continued)"
    if progress.tool_calls:
        return Action.ERROR, "the stream was producing tool calls (not continued)"
    if not falls_over:
        return Action.ERROR, f"{failure.label} does not fall over for this element"
    if continuations >= max_continuations:
        return Action.ERROR, f"max_continuations ({max_continuations}) reached"
    return Action.CONTINUE, ""


def continuation_form(settings: FailoverSettings, route: str, element_index: int) -> tuple[bool, str]:
    """How a continuation asks an element to go on: (prefill?, the instruction). Prefill (the
    partial answer as a final assistant message, continued in place) only where the element says
    its model takes it (`prefill: true`): some models answer 400 to a trailing assistant message.
    The instruction: the route's `continue_instruction`, else the defaults'."""
    r = settings.routes[route]
    instruction = r.continue_instruction if r.continue_instruction is not None else settings.defaults.continue_instruction
    return bool(r.elements[element_index].prefill), instruction


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True, slots=True)
class Part:
    """One upstream call's share of a client stream."""

    backend: str
    model: str
    key: str
    chunks: int
    outcome: str  # "complete" or the fault

    def to_dict(self) -> dict[str, object]:
        return {"backend": self.backend, "model": self.model, "key": self.key, "chunks": self.chunks, "outcome": self.outcome}


def served_by(route: str, parts: Sequence[Part]) -> dict[str, object]:
    """The `failover` field of a continued stream's last chunk(s)."""
    last = parts[-1]
    return {
        "route": route,
        "backend": last.backend,
        "model": last.model,
        "key": last.key,
        "continuations": len(parts) - 1,
        "parts": [p.to_dict() for p in parts],
    }


def interrupted_message(route: str, deployment: str, failure: Failure, why: str, attempts: str) -> str:
    """The error event's message: who failed, how, why it stops here, every attempt."""
    return (
        f"stream of route {route!r} interrupted: {deployment} failed mid-stream ({failure.label}: "
        f"{failure.reason}); not continued: {why}; attempts: {attempts}"
    )
