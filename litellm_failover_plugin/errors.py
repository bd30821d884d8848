"""The error a client gets when every candidate of a route has failed over."""

from __future__ import annotations

from collections.abc import Sequence

from .routing import Attempt

EXHAUSTED_TYPE = "failover_exhausted"


class FailoverExhausted(Exception):
    """Every candidate of a route failed over (or was skipped).

    Carries every attempt (backend, model, key name, status, short reason) and the HTTP status
    to answer with: the last attempt's, 503 when it had none. Never holds a secret.
    """

    def __init__(self, route: str, attempts: Sequence[Attempt], status_code: int, stopped: str = "") -> None:
        self.route = route
        self.attempts = tuple(attempts)
        self.status_code = status_code
        self.stopped = stopped
        tried = ", ".join(a.summary() for a in self.attempts) or "no candidates"
        calls = sum(1 for a in self.attempts if a.outcome.called)
        why = f" ({stopped})" if stopped else ""
        self.message = f"failover exhausted for route {route!r} after {calls} upstream call(s){why}: {tried}"
        Exception.__init__(self, self.message)  # explicit: subclasses mix in other exception bases

    def to_openai_error(self) -> dict[str, object]:
        """The body an OpenAI client expects: {"error": {message, type, param, code, attempts}}."""
        return {
            "error": {
                "message": self.message,
                "type": EXHAUSTED_TYPE,
                "param": None,
                "code": str(self.status_code),
                "attempts": [a.to_dict() for a in self.attempts],
            }
        }
