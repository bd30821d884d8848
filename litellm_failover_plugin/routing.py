"""Which deployment next: the one file that decides.

`compile_routes` turns validated settings into one `RoutePlan` per route: its candidates
(backend, model, key) in policy order, each with the conditions that apply to it. A
`FailoverRun` walks a plan for one request: it skips what is unavailable or not wanted for the
last failure, and judges each failure. Pure: no litellm, no I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from .conditions import ANY_FAILURE, Conditions, Failure, falls_over, key_refused
from .config import FailoverSettings
from .limits import NO_LIMITS, Limits
from .policies import POLICIES, ElementKeys


def deployment_id(route: str, element: str, key: str) -> str:
    """Stable LiteLLM deployment id of one (route, backend:model, key)."""
    return f"{route}/{element}/{key}"


def health_id(element: str, key: str) -> str:
    """Where the health of one (backend:model, key) is kept: its breaker, stats and probes. Every
    route that uses the key shares it (a route's deployment ids stay apart, for LiteLLM)."""
    return f"{element}/{key}"


def front_id(route: str) -> str:
    """The route's own deployment: the only one under the route's name, never called. It keeps
    the route a model name LiteLLM and the proxy know, while the keys' deployments sit in the
    route's keys group (`keys_group`), so what the proxy reads per request under the route's name
    (access, guardrails, limits: `get_model_list(route)`, several times) is one deployment
    whatever the route's size."""
    return f"{route}/(route)"


KEYS_GROUP_PREFIX = "failover-keys:"


def keys_group(route: str) -> str:
    """The LiteLLM model name the route's key deployments share (hidden from clients): one group
    per route, so LiteLLM's cooldown rules see the route's size as before."""
    return f"{KEYS_GROUP_PREFIX}{route}"


@dataclass(frozen=True, slots=True)
class Candidate:
    route: str
    element: str  # "backend:model"
    backend: str
    model: str
    key: str  # the key's name, never its value
    deployment_id: str  # LiteLLM's id of this route's deployment of the key
    health_id: str  # the key's breaker, stats and probes: shared by every route using it
    element_index: int
    falls_over: Conditions  # failures of this candidate that move on to the next one
    catch: Conditions | None  # only try this candidate after a failure matching these
    max_retries: int = 0  # same-candidate retries before moving on
    retry_on: Conditions = ANY_FAILURE  # the failures those retries are for
    priority: int = 0  # scored routes: lower first
    limits: Limits = NO_LIMITS  # the key's rpm/tpm (limits.py)


@dataclass(frozen=True, slots=True)
class RoutePlan:
    name: str
    policy: str
    enabled: bool
    candidates: tuple[Candidate, ...]

    @property
    def deployment_ids(self) -> tuple[str, ...]:
        return tuple(c.deployment_id for c in self.candidates)

    @property
    def installed_ids(self) -> tuple[str, ...]:
        """The ids this plan puts on the router: the route's front deployment, then its candidates'."""
        return (front_id(self.name), *self.deployment_ids)


def compile_routes(settings: FailoverSettings) -> dict[str, RoutePlan]:
    plans: dict[str, RoutePlan] = {}
    for name, route in settings.routes.items():
        keys = [list(settings.backends[e.backend].api_keys) for e in route.elements]
        shape = [ElementKeys(e.element, len(k)) for e, k in zip(route.elements, keys, strict=False)]
        candidates = []
        for ei, ki in POLICIES[route.policy](shape):
            e = route.elements[ei]
            candidates.append(
                Candidate(
                    route=name,
                    element=e.element,
                    backend=e.backend,
                    model=e.model,
                    key=keys[ei][ki],
                    deployment_id=deployment_id(name, e.element, keys[ei][ki]),
                    health_id=health_id(e.element, keys[ei][ki]),
                    element_index=ei,
                    falls_over=settings.conditions_for(name, e),
                    catch=e.catch,
                    max_retries=settings.retries_for(name),
                    retry_on=settings.retry_on_for(name, e),
                    priority=e.priority,
                    limits=settings.backends[e.backend].limits(keys[ei][ki]),
                )
            )
        plans[name] = RoutePlan(name, route.policy, route.enabled, tuple(candidates))
    return plans


class Outcome(enum.Enum):
    SUCCESS = "success"
    RETRIED = "retried"  # failed with a listed failure; the same candidate was tried again
    FAILED_OVER = "failed_over"  # failed with a listed failure; moved on
    RETURNED = "returned"  # failed with an unlisted failure; returned to the client as is
    SKIPPED_COOLDOWN = "skipped_cooldown"  # LiteLLM has it in cooldown
    SKIPPED_OPEN = "skipped_open"  # its circuit breaker is open (or another caller holds the probe)
    SKIPPED_CATCH = "skipped_catch"  # its `catch` list did not name the last failure
    SKIPPED_BUSY = "skipped_busy"  # its last call failed and enough calls to it are in flight (herd.py)
    SKIPPED_LIMIT = "skipped_limit"  # its key used its rpm/tpm of the current minute (limits.py)
    INTERRUPTED = "interrupted"  # its stream failed after the client had chunks of it

    @property
    def called(self) -> bool:
        return self in (Outcome.SUCCESS, Outcome.RETRIED, Outcome.FAILED_OVER, Outcome.RETURNED, Outcome.INTERRUPTED)


@dataclass(frozen=True, slots=True)
class Attempt:
    candidate: Candidate
    outcome: Outcome
    failure: Failure | None = None

    def to_dict(self) -> dict[str, object]:
        c, f = self.candidate, self.failure
        return {
            "backend": c.backend,
            "model": c.model,
            "key": c.key,
            "status": f.status if f is not None else None,
            "outcome": self.outcome.value,
            "reason": f.reason if f is not None else "",
        }

    def summary(self) -> str:
        c = self.candidate
        detail = self.failure.label if self.failure is not None else self.outcome.value
        if not self.outcome.called:
            detail = self.outcome.value
        return f"{c.element}/{c.key}={detail}"


class Verdict(enum.Enum):
    NEXT = "next"  # try the next candidate
    RETURN = "return"  # hand this failure back to the client


@dataclass
class FailoverRun:
    """One request's walk through a plan.

    `unavailable` maps the deployment ids known not to take calls right now to why (LiteLLM
    cooldown, open breaker); they are skipped and listed, costing no upstream call.

    `known`: how many candidates (in plan order) `unavailable` has been filled for; None, all.
    The walk pauses (`paused`) when it reaches the first candidate whose state is not known
    yet: the caller reads the next ones into `unavailable` (learned()) and walks on. So a
    request reads the state of the candidates it reaches, not of the whole route.
    """

    plan: RoutePlan
    unavailable: Mapping[str, Outcome] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    stopped: str = ""  # why the walk ended early (e.g. the retry budget), "" if it did not
    _last_failure: Failure | None = None
    _position: int = 0

    earlier: tuple[Attempt, ...] = ()  # this request's attempts in earlier walks (queue passes)
    known: int | None = None
    paused: bool = False  # candidates() stopped at `known`: read more, then walk on
    key_failed: str = ""  # a key of this element was refused (401/403, unlisted): only its other keys may go on

    @property
    def position(self) -> int:
        """How many candidates the walk has passed."""
        return self._position

    def learned(self, n: int) -> None:
        """The state of the `n` candidates after the known ones is now in `unavailable`."""
        self.known = (self.known or 0) + n

    def reread(self) -> None:
        """Forget what is known of the candidates not walked yet (a fresh `unavailable` follows)."""
        self.known = self._position

    @property
    def earlier_calls(self) -> int:
        """Upstream calls this request made in earlier walks."""
        return sum(1 for a in self.earlier if a.outcome.called)

    @property
    def calls(self) -> int:
        """Upstream calls this request has made, earlier walks included."""
        return self.earlier_calls + sum(1 for a in self.attempts if a.outcome.called)

    @property
    def history(self) -> tuple[Attempt, ...]:
        """Every attempt of the request, earlier walks first: what its error lists."""
        return (*self.earlier, *self.attempts)

    def candidates(self) -> Iterator[Candidate]:
        """The candidates to call, in order; stops once one succeeded or must return."""
        candidates = self.plan.candidates
        self.paused = False
        while self._position < len(candidates):
            if self.stopped or (not self.plan.enabled and self.calls > self.earlier_calls):
                return
            if self.known is not None and self._position >= self.known:
                self.paused = True
                return
            c = candidates[self._position]
            self._position += 1
            if self.key_failed and c.element != self.key_failed:
                continue  # the refused key's failure does not fall over to other elements
            skip = self.unavailable.get(c.deployment_id)
            if skip is not None:
                self.attempts.append(Attempt(c, skip))
                continue
            last = self._last_failure
            if c.catch is not None and last is not None and not c.catch.matches(last):
                self.attempts.append(Attempt(c, Outcome.SKIPPED_CATCH))
                continue
            yield c
            if self.attempts and self.attempts[-1].outcome in (Outcome.SUCCESS, Outcome.RETURNED):
                return
        if self.key_failed and not self.stopped:  # a queue would not help: the other elements are not for this failure
            self.stop(f"no other key of {self.key_failed} could be called after its key was refused")

    @property
    def last_failure(self) -> Failure | None:
        """The failure that made the walk move on last (None if nothing failed)."""
        return self._last_failure

    def stop(self, reason: str) -> None:
        """End the walk early; the exhausted error says why."""
        self.stopped = reason

    def retried(self, candidate: Candidate, failure: Failure) -> None:
        self.attempts.append(Attempt(candidate, Outcome.RETRIED, failure))
        self._last_failure = failure

    def skipped(self, candidate: Candidate, outcome: Outcome) -> None:
        """The caller found it unavailable after all (another replica took its probe)."""
        self.attempts.append(Attempt(candidate, outcome))

    def failed(self, candidate: Candidate, failure: Failure) -> Verdict:
        """Judge a failed attempt. What the list that applies names falls over to any candidate;
        a 401/403 it does not name is that key's failure: the walk goes on to the element's next
        key (not to other elements), and the error goes back as is when it has none left."""
        listed = falls_over(failure, candidate.falls_over)
        if listed or (key_refused(failure) and self._other_key_of(candidate)):
            self.attempts.append(Attempt(candidate, Outcome.FAILED_OVER, failure))
            self._last_failure = failure
            self.key_failed = "" if listed else candidate.element
            return Verdict.NEXT
        self.attempts.append(Attempt(candidate, Outcome.RETURNED, failure))
        return Verdict.RETURN

    def _other_key_of(self, candidate: Candidate) -> bool:
        """Whether a key of `candidate`'s element is still ahead in the walk, not known to be down."""
        return any(
            c.element == candidate.element and c.key != candidate.key and c.deployment_id not in self.unavailable
            for c in self.plan.candidates[self._position :]
        )

    def succeeded(self, candidate: Candidate) -> None:
        self.attempts.append(Attempt(candidate, Outcome.SUCCESS))

    def interrupted(self, candidate: Candidate, failure: Failure) -> None:
        """The stream `candidate` was serving failed after its first chunk: its attempt says so,
        and a continuation on the next candidates takes up the walk after it."""
        for i in range(len(self.attempts) - 1, -1, -1):
            if self.attempts[i].candidate == candidate and self.attempts[i].outcome is Outcome.SUCCESS:
                self.attempts[i] = Attempt(candidate, Outcome.INTERRUPTED, failure)
                break
        else:
            self.attempts.append(Attempt(candidate, Outcome.INTERRUPTED, failure))
        self._last_failure = failure

    def exhausted_status(self) -> int:
        """HTTP status for the exhausted error: the last attempt's; when no call failed, 429 if
        a key was skipped for its rate limit (the client may come back when it frees up), else 503."""
        if self._last_failure is not None:
            return self._last_failure.status or 503
        return 429 if self.limited else 503

    @property
    def limited(self) -> bool:
        """Whether the walk skipped a key for its rate limit."""
        return any(a.outcome is Outcome.SKIPPED_LIMIT for a in self.attempts)
