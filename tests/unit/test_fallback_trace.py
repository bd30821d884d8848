"""What LiteLLM's fallbacks after a route did: who served, what failed, what the headers say."""

from litellm_failover_plugin.fallback_trace import FAILED_HEADER, FALLBACK_HEADER, FallbackTrace, safe_name


def test_no_hop_says_nothing() -> None:
    trace = FallbackTrace()
    assert trace.served is None and trace.failed == [] and trace.headers() == {}


def test_one_after_another_the_last_success_served() -> None:
    trace = FallbackTrace()
    first = trace.start("plain")
    first.ok, first.status = False, 503
    second = trace.start("other")
    second.ok = True
    assert trace.headers() == {FALLBACK_HEADER: "other", FAILED_HEADER: "plain"}
    assert trace.to_dict() == {"served": "other", "failed": [{"model": "plain", "status": 503}]}


def test_a_hop_that_fell_back_itself_did_not_serve() -> None:
    trace = FallbackTrace()
    outer = trace.start("spare")  # a route, exhausted, whose own fallback served
    inner = trace.start("other")
    inner.ok = True
    outer.ok = True  # it returned the inner hop's answer
    assert trace.headers() == {FALLBACK_HEADER: "other", FAILED_HEADER: "spare"}


def test_every_hop_failed() -> None:
    trace = FallbackTrace()
    for name, status in (("plain", 503), ("other", None)):
        hop = trace.start(name)
        hop.ok, hop.status = False, status
    assert trace.headers() == {FAILED_HEADER: "plain,other"}
    assert trace.summary() == "plain=503, other=error"


def test_names_from_a_client_are_made_safe_for_a_header() -> None:
    assert safe_name("gpt-4o-mini") == "gpt-4o-mini"
    assert safe_name("openai/gpt-4o:free@x") == "openai/gpt-4o:free@x"
    assert safe_name("a\r\nx-evil: 1,b") == "a__x-evil:_1_b"
    assert safe_name("") == "_"
    assert len(safe_name("x" * 500)) == 64
