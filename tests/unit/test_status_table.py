"""The status table fits 80 columns, whatever the names and reasons."""

from litellm_failover_plugin.__main__ import _only, render_table

LONG = {
    "deployment": "a-rather-long-route-name/openai-primary-east:gpt-4o-mini-2024-07-18/primary-key-number-1",
    "route": "a-rather-long-route-name",
    "backend": "openai-primary-east",
    "model": "gpt-4o-mini-2024-07-18",
    "key": "primary-key-number-1",
    "state": "half_open",
    "failures": 12345,
    "open_for_s": 299.5,
    "litellm_cooldown": True,
    "calls": 1234567,
    "latency_ms": 12345.6,
    "success_rate": 0.987,
    "score": 0.5,
    "reason": "3 failures in a row: 503 service unavailable from the upstream, with a long message",
}
SHORT = {"deployment": "r/a:b/k", "route": "r", "backend": "a", "model": "b", "key": "k", "state": "closed"}


def test_the_table_fits_80_columns_and_keeps_every_name_and_reason() -> None:
    title = "failover status of http://127.0.0.1:4000 (state store: memory), answered by worker pid 4242"
    text = render_table(title, [LONG, SHORT], 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    header = next(line for line in lines if "deployment" in line and "state" in line)
    start, end = header.index("deployment"), header.index("state")
    column = "".join(line[start:end].strip() for line in lines[lines.index(header) + 2 :])
    assert LONG["deployment"] in column  # wrapped, all there
    assert "503serviceunavailable" in column.replace(" ", "")  # the reason, on its own line
    for part in ("half_open", "1234567", "99%"):
        assert part in text
    assert "answered by worker pid 4242" in " ".join(text.split())


def test_rows_from_redis_with_only_breaker_fields_render() -> None:
    row = {"deployment": "r/a:b/k", "route": "r", "backend": "a", "model": "b", "key": "k", "state": "open", "failures": 3}
    assert "r/a:b/k" in render_table("t", [row], 80)


def test_route_filter() -> None:
    assert _only([LONG, SHORT], "r") == [SHORT]
    assert _only([LONG, SHORT], None) == [LONG, SHORT]


def test_a_keys_use_of_its_rate_limits_is_on_the_line_under_it() -> None:
    row = {**SHORT, "limits": "rpm 2/2 tpm 150/1000"}
    text = render_table("t", [row, SHORT], 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "rpm 2/2 tpm 150/1000" in text


def _deployment_lines(text: str) -> list[str]:
    lines = text.splitlines()
    header = next(line for line in lines if "deployment" in line and "state" in line)
    start, end = header.index("deployment"), header.index("state")
    return [line[start:end].strip() for line in lines[lines.index(header) + 2 :] if line[start:end].strip()]


def test_names_wrap_after_a_separator_never_inside_a_word() -> None:
    text = render_table("t", [LONG], 80)
    lines = _deployment_lines(text)
    parts = lines[: next(i for i, p in enumerate(lines) if p.startswith("3 failures"))]
    assert len(parts) > 1  # it had to wrap
    for line in parts[:-1]:
        assert line[-1] in "/:", f"cut mid-word: {parts}"
    assert "".join(parts).startswith(LONG["deployment"])
