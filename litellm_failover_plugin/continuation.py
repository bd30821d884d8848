"""Continuing a stream that broke mid-way: the request the next candidate gets, and what of its
answer the client may see.

Pure: no litellm, no HTTP, no clock.

A continuation is asked to go on from the text the client already has; many models ignore the
instruction and answer from the start, or write a different answer. `Reconciler` compares what
the continuation sends with what the client has, and decides, as early as it can:
- the continuation repeats the client's text (give or take whitespace): the repeated part is
  held back and only what comes after it is sent;
- it starts with new text: it is sent as it comes;
- it repeats the start of the answer for a while, then says something else: the two texts
  cannot be joined into one answer, and the stream must end with an error, not a spliced text.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CONTINUE_INSTRUCTION = (
    "Your previous message was cut off. Continue it exactly where it stopped: do not repeat "
    "anything, do not add a preamble, do not mention the interruption."
)
# a continuation whose first characters match the answer's for at least this long (or half the
# answer, when that is shorter) and then differ is rewriting the answer, not continuing it
REPEAT_MIN_CHARS = 16


def continuation_messages(
    messages: Sequence[Mapping[str, Any]], partial: str, prefill: bool, instruction: str = CONTINUE_INSTRUCTION
) -> list[dict[str, Any]]:
    """The request for the next candidate: the same conversation, the text the client already
    has as the assistant's message, and (unless the candidate continues a final assistant
    message in place: prefill) an instruction to continue it."""
    out = [dict(m) for m in messages]
    out.append({"role": "assistant", "content": partial})
    if not prefill:
        out.append({"role": "user", "content": instruction})
    return out


class Verdict(enum.Enum):
    PENDING = "pending"  # so far it repeats the client's text: hold it back
    APPEND = "append"  # what it sends from here on goes to the client
    DIVERGED = "diverged"  # it rewrote the answer: end the stream with an error


def _match(have: str, got: str) -> tuple[int, int]:
    """How far `have` and `got` agree from their starts, runs of whitespace counting as equal:
    (characters of `have`, characters of `got`). Leading whitespace is ignored on both."""
    i = len(have) - len(have.lstrip())
    j = len(got) - len(got.lstrip())
    while i < len(have) and j < len(got):
        a, b = have[i], got[j]
        if a.isspace() and b.isspace():
            while i < len(have) and have[i].isspace():
                i += 1
            while j < len(got) and got[j].isspace():
                j += 1
            continue
        if a != b:
            break
        i, j = i + 1, j + 1
    return i, j


@dataclass
class Reconciler:
    """Follows one continuation's text against the text the client has (`have`)."""

    have: str
    held: str = ""  # the continuation's text not decided yet
    verdict: Verdict = Verdict.PENDING
    skipped: int = 0  # characters of the continuation held back as repeats
    why: str = ""  # when DIVERGED

    def feed(self, text: str) -> str:
        """The continuation sent `text`: what of it to send the client now ("" while pending)."""
        if self.verdict is Verdict.APPEND:
            return text
        if self.verdict is Verdict.DIVERGED:
            return ""
        self.held += text
        return self._decide(final=False)

    def end(self) -> str:
        """The continuation ended (a finish_reason): what is left to send, if anything."""
        if self.verdict is Verdict.PENDING:
            return self._decide(final=True)
        return ""

    def _decide(self, final: bool) -> str:
        have, got = self.have, self.held
        i, j = _match(have, got)
        rest = have[i:]
        if not rest.strip():  # it repeated all the client has: the rest is new
            self.verdict, self.skipped = Verdict.APPEND, j
            return got[j:]
        if j == len(got):  # everything so far repeats the start of the answer
            if not got.strip():  # whitespace only: nothing to judge yet (at the end: nothing more to add)
                if final:
                    self.verdict = Verdict.APPEND
                return ""
            if not final:
                return ""
            self._diverged(f"the continuation repeated the first {i} of the answer's {len(have)} characters and ended")
            return ""
        shared = len(have[:i].strip())
        if shared >= min(REPEAT_MIN_CHARS, max(1, len(have.strip()) // 2)):
            self._diverged(
                f"the continuation repeated the first {shared} of the answer's {len(have)} characters, then wrote something else"
            )
            return ""
        self.verdict = Verdict.APPEND  # new text from its first characters: a real continuation
        return got

    def _diverged(self, why: str) -> None:
        self.verdict, self.why = Verdict.DIVERGED, why
