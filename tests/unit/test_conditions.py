import pytest

from litellm_failover_plugin.conditions import DEFAULT_FALLBACK, Conditions, Failure, Kind, falls_over


def test_parse_mixes_codes_and_kinds() -> None:
    c = Conditions.parse([429, "503", "timeout", "Network"])
    assert c.statuses == frozenset({429, 503})
    assert c.kinds == frozenset({Kind.TIMEOUT, Kind.NETWORK})


@pytest.mark.parametrize("bad", [99, 600, "teapot", True, "4xx"])
def test_parse_rejects_what_is_neither(bad: object) -> None:
    with pytest.raises(ValueError, match="status code"):
        Conditions.parse([bad])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Failure(429), Kind.RATE_LIMIT),
        (Failure(401), Kind.AUTH),
        (Failure(403), Kind.AUTH),
        (Failure(502), Kind.UNAVAILABLE),
        (Failure(429, Kind.QUOTA), Kind.QUOTA),
        (Failure(None, Kind.TIMEOUT), Kind.TIMEOUT),
        (Failure(None, Kind.NETWORK), Kind.NETWORK),
    ],
)
def test_kinds_match_their_failures(failure: Failure, kind: Kind) -> None:
    assert Conditions(kinds=frozenset({kind})).matches(failure)


def test_quota_429_is_also_a_rate_limit_and_a_429() -> None:
    quota = Failure(429, Kind.QUOTA)
    assert Conditions.parse(["rate_limit"]).matches(quota)
    assert Conditions.parse([429]).matches(quota)
    assert not Conditions.parse(["quota"]).matches(Failure(429))


def test_all_matches_anything() -> None:
    assert Conditions.parse(["all"]).matches(Failure(418))
    assert Conditions.parse(["all"]).matches(Failure(None))


def test_unlisted_status_does_not_fall_over() -> None:
    assert not falls_over(Failure(400), DEFAULT_FALLBACK)
    assert not falls_over(Failure(401), DEFAULT_FALLBACK)
    assert falls_over(Failure(503), DEFAULT_FALLBACK)


def test_timeouts_and_connection_errors_always_fall_over() -> None:
    only_429 = Conditions.parse([429])
    assert falls_over(Failure(None, Kind.TIMEOUT), only_429)
    assert falls_over(Failure(None, Kind.NETWORK), only_429)


def test_an_error_with_no_status_and_no_kind_falls_over_only_on_all() -> None:
    assert not falls_over(Failure(None), DEFAULT_FALLBACK)
    assert falls_over(Failure(None), Conditions.parse(["all"]))


def test_label_prefers_status() -> None:
    assert Failure(503).label == "503"
    assert Failure(None, Kind.TIMEOUT).label == "timeout"
