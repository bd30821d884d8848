"""What of a continuation's text reaches the client (continuation.Reconciler), and the
continuation request."""

from __future__ import annotations

import pytest

from litellm_failover_plugin.continuation import CONTINUE_INSTRUCTION, Reconciler, Verdict, continuation_messages

HAVE = "The quick brown fox jumps over "  # what the client received before the cut


def feed_all(have: str, pieces: list[str]) -> tuple[str, Reconciler]:
    r = Reconciler(have)
    sent = "".join(r.feed(p) for p in pieces)
    return sent + r.end(), r


def test_a_real_continuation_is_sent_as_it_comes() -> None:
    r = Reconciler(HAVE)
    assert r.feed("the lazy ") == "the lazy "
    assert r.verdict is Verdict.APPEND
    assert r.feed("dog.") == "dog."


@pytest.mark.parametrize(
    "pieces",
    [
        ["The quick brown fox jumps over the lazy dog."],
        ["The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog."],
        ["The quick", " brown fox\njumps  over", " the lazy dog."],  # whitespace differs
        ["  The quick brown fox jumps over the lazy dog."],  # a leading space
    ],
)
def test_a_continuation_that_repeats_the_answer_sends_only_what_is_new(pieces: list[str]) -> None:
    sent, r = feed_all(HAVE, pieces)
    assert sent.strip() == "the lazy dog."
    assert r.verdict is Verdict.APPEND


def test_while_it_repeats_nothing_is_sent() -> None:
    r = Reconciler(HAVE)
    assert r.feed("The quick ") == ""
    assert r.feed("brown fox ") == ""
    assert r.verdict is Verdict.PENDING
    assert r.feed("jumps over the") == "the"


def test_a_word_cut_in_the_middle_is_completed() -> None:
    sent, _ = feed_all("The quick bro", ["The quick brown fox."])
    assert "The quick bro" + sent == "The quick brown fox."


def test_a_continuation_that_rewrites_the_answer_diverges() -> None:
    sent, r = feed_all(HAVE, ["The quick brown fox ", "leaps over the lazy dog."])
    assert sent == ""
    assert r.verdict is Verdict.DIVERGED and "then wrote something else" in r.why
    assert r.feed("more") == ""  # nothing once it diverged


def test_a_continuation_that_ends_inside_the_repeat_diverges() -> None:
    sent, r = feed_all(HAVE, ["The quick brown"])
    assert sent == "" and r.verdict is Verdict.DIVERGED and "and ended" in r.why


def test_a_continuation_sharing_a_few_first_letters_is_new_text() -> None:
    sent, r = feed_all(HAVE, ["Then the dog woke up."])  # "The" shared by chance
    assert sent == "Then the dog woke up." and r.verdict is Verdict.APPEND


def test_short_answers_judge_by_half_their_length() -> None:
    _, r = feed_all("One two ", ["One too"])  # 5 of 7 characters shared, then different
    assert r.verdict is Verdict.DIVERGED
    sent, r = feed_all("One two ", ["Once more"])  # 2 shared: new text
    assert sent == "Once more" and r.verdict is Verdict.APPEND


def test_a_repeat_of_everything_and_nothing_more_is_the_whole_answer() -> None:
    sent, r = feed_all(HAVE, [HAVE])
    assert sent == "" and r.verdict is Verdict.APPEND


def test_continuation_messages_prefill_or_instruct() -> None:
    asked = [{"role": "user", "content": "hi"}]
    assert continuation_messages(asked, "Hel", prefill=True) == [*asked, {"role": "assistant", "content": "Hel"}]
    out = continuation_messages(asked, "Hel", prefill=False, instruction="go on")
    assert out[-1] == {"role": "user", "content": "go on"}
    assert continuation_messages(asked, "Hel", prefill=False)[-1]["content"] == CONTINUE_INSTRUCTION
    assert asked == [{"role": "user", "content": "hi"}]
