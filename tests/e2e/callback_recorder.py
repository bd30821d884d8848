"""A LiteLLM callback for the failure-logging tests: every success and failure event the proxy's
callbacks get, one JSON line each, in the file named by FAILOVER_TEST_EVENTS (copied beside the
test config.yaml; the proxy imports it as `callback_recorder.recorder`)."""

import json
import os
from typing import Any

from litellm.integrations.custom_logger import CustomLogger


class Recorder(CustomLogger):
    def _write(self, kind: str, kwargs: dict[str, Any]) -> None:
        logged = kwargs.get("standard_logging_object") or {}
        event = {
            "kind": kind,
            "status": logged.get("status"),
            "model_id": logged.get("model_id"),
            "total_tokens": logged.get("total_tokens"),
            "response_cost": logged.get("response_cost"),
            "model_group": logged.get("model_group"),
        }
        with open(os.environ["FAILOVER_TEST_EVENTS"], "a") as f:
            f.write(json.dumps(event) + "\n")

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._write("success", kwargs)

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._write("failure", kwargs)


recorder = Recorder()
