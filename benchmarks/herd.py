"""Herd: how many failed calls a primary that just died takes from requests arriving together.

In-process (a litellm.Router with the routes attached, fake upstreams on 127.0.0.1), so only the
calls are counted, not the machine's speed. Route `chat` = m over primary:model and
backup:model, breaker defaults (3 consecutive failures open it). The primary answers 503 after
`DELAY_S`, so every call it gets overlaps the others. Two moments:

- after_first_failure: one request has already found the primary failing (one failed call),
  then `HERD` requests arrive together. The figure is every call the primary failed, that one
  included. This is `herd_failed_calls`: the goal is at most 5.
- at_death: the `HERD` requests arrive together before any call failed. Calls already started
  when the first failure comes back cannot be taken back; reported for honesty.

Each with herd control (the default `breaker.max_in_flight_while_failing`) and without it (0),
which is what the plugin did before herd control.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

HERD = 200
DELAY_S = 0.2


async def _one(limit: int | None, warm: bool) -> int:
    import litellm

    from litellm_failover_plugin import attach
    from litellm_failover_plugin.testing import Behavior, FakeUpstream

    with FakeUpstream("primary") as primary, FakeUpstream("backup") as backup:
        breaker: dict[str, Any] = {} if limit is None else {"max_in_flight_while_failing": limit}
        router = litellm.Router(model_list=[], disable_cooldowns=True)
        attach(
            router,
            {
                "backends": {
                    "primary": {"provider": "openai", "api_base": primary.url, "api_keys": {"p1": "herd-key-p1"}},
                    "backup": {"provider": "openai", "api_base": backup.url, "api_keys": {"b1": "herd-key-b1"}},
                },
                "routes": {"chat": {"policy": "m", "elements": ["primary:model", "backup:model"]}},
                "breaker": breaker,
            },
        )
        messages = [{"role": "user", "content": "hi"}]
        primary.set(Behavior(503, delay_s=DELAY_S))
        if warm:
            await router.acompletion(model="chat", messages=messages)
        await asyncio.gather(*(router.acompletion(model="chat", messages=messages) for _ in range(HERD)))
        return len(primary.received)


def measure() -> dict[str, Any]:
    logging.getLogger("litellm_failover_plugin").setLevel(logging.ERROR)  # 200 "moving on" lines
    out: dict[str, Any] = {}
    for name, warm in (("after_first_failure", True), ("at_death", False)):
        out[name] = {
            "herd_control": asyncio.run(_one(None, warm)),
            "without_herd_control": asyncio.run(_one(0, warm)),
        }
    out["herd_failed_calls"] = out["after_first_failure"]["herd_control"]
    return out


if __name__ == "__main__":
    import json
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    print(json.dumps(measure(), indent=2))
