"""Failover policies: pure functions from a route's elements to an ordered attempt plan.

A policy sees each element with the names of its backend's keys, in the order written, and
returns (element index, key index) pairs. A new policy is one function plus one registry line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Slot = tuple[int, int]  # (element index, key index)


@dataclass(frozen=True, slots=True)
class ElementKeys:
    """What a policy needs to know of one route element: how many keys its backend has."""

    element: str  # "backend:model", for messages only
    key_count: int


Policy = Callable[[Sequence[ElementKeys]], list[Slot]]


def policy_k(elements: Sequence[ElementKeys]) -> list[Slot]:
    """Every key of the first element's backend, on the first element."""
    if not elements:
        return []
    return [(0, k) for k in range(elements[0].key_count)]


def policy_m(elements: Sequence[ElementKeys]) -> list[Slot]:
    """Every element in order, each with its backend's first key."""
    return [(i, 0) for i, e in enumerate(elements) if e.key_count > 0]


def policy_km(elements: Sequence[ElementKeys]) -> list[Slot]:
    """Every element in order, each with every key of its backend."""
    return [(i, k) for i, e in enumerate(elements) for k in range(e.key_count)]


def policy_mk(elements: Sequence[ElementKeys]) -> list[Slot]:
    """Rounds: round r takes key r of each element, in element order.

    Elements whose backend has fewer keys drop out of the later rounds.
    """
    rounds = max((e.key_count for e in elements), default=0)
    return [(i, r) for r in range(rounds) for i, e in enumerate(elements) if r < e.key_count]


def policy_scored(elements: Sequence[ElementKeys]) -> list[Slot]:
    """Every key of every element, like km; the attempt loop re-orders them per request by
    priority, then by latency, reliability and cost (scoring.rank)."""
    return policy_km(elements)


POLICIES: dict[str, Policy] = {
    "k": policy_k,
    "m": policy_m,
    "km": policy_km,
    "mk": policy_mk,
    "scored": policy_scored,
}
DYNAMIC = frozenset({"scored"})  # policies whose order the attempt loop recomputes per request
