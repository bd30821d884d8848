"""The README's scenario table, the plugin's column, checked on a real proxy: every stream fault
of benchmarks/scenarios.py ends with the whole answer once, or with the typed error."""

import importlib.util
from pathlib import Path

import pytest

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
_spec = importlib.util.spec_from_file_location("scenarios", Path(__file__).resolve().parents[2] / "benchmarks" / "scenarios.py")
assert _spec is not None and _spec.loader is not None
scenarios = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scenarios)

WHOLE = ("One two three four", None)
EXPECTED = {name: WHOLE for name in scenarios.SCENARIOS}
EXPECTED["cut; the backup writes another answer"] = ("One two ", "failover_stream_interrupted")


def test_the_plugin_column_of_the_scenario_table(upstream: FakeUpstream) -> None:
    with ProxyProcess(scenarios.plugin_config(upstream.url)) as proxy:
        results = scenarios.run(upstream, proxy, lambda i: f"r{i}")
    for name, (text, error, took) in results.items():
        print(f"\n{name}: {text!r} {error or ''} {took:.2f}s")
    assert {name: (text, error) for name, (text, error, _) in results.items()} == EXPECTED
    assert max(took for _, _, took in results.values()) < 10  # every timeout is 1 s; the faults last 30
