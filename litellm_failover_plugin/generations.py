"""Plan generations: which deployments a route change may remove, and when.

Every route change (a command, the admin API, a reload) makes a new generation of plans; a
request keeps the plan it started with, so a deployment the new plans dropped stays on the
router until every request that started in an older generation has finished. Pure
bookkeeping: the runner does the removing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class Generations:
    def __init__(self) -> None:
        self.current = 0
        self._running: Counter[int] = Counter()  # requests in flight, by the generation they started in
        self._retiring: list[tuple[int, frozenset[str]]] = []  # deployments dropped, by generation

    def bump(self) -> None:
        """New plans are served from now on."""
        self.current += 1

    def start(self) -> int:
        """A request starts on the current plans: its generation (pass it to finish())."""
        self._running[self.current] += 1
        return self.current

    def finish(self, generation: int) -> bool:
        """A request ended; True when retired deployments may have become removable."""
        self._running[generation] -= 1
        if self._running[generation] > 0:
            return False
        del self._running[generation]
        return bool(self._retiring)

    def retire(self, ids: Iterable[str]) -> None:
        """The current plans no longer use `ids`."""
        ids = frozenset(ids)
        if ids:
            self._retiring.append((self.current, ids))

    def removable(self, in_use: frozenset[str]) -> set[str]:
        """The retired deployments no request in flight can call any more, minus those the
        current plans use again (`in_use`); forgotten once returned."""
        oldest = min((g for g, n in self._running.items() if n > 0), default=self.current)
        keep: list[tuple[int, frozenset[str]]] = []
        out: set[str] = set()
        for gen, ids in self._retiring:
            if oldest < gen:
                keep.append((gen, ids))
            else:
                out |= ids - in_use
        self._retiring = keep
        return out
