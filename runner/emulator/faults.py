"""Which injected fault, if any, hits a request: method and path glob, skip, times, probability.

Faults are checked in order and the first that hits wins; the ones after
it don't see the request (their counters and random draws don't move).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from fnmatch import fnmatchcase

from runner.emulator.scenario import Fault


class _Rule:
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.matched = 0
        self.hits = 0
        self.random = random.Random(fault.seed)

    def hits_request(self, method: str, path: str) -> bool:
        fault = self.fault
        if fault.method is not None and fault.method != method:
            return False
        if not fnmatchcase(path, fault.path):
            return False
        self.matched += 1
        if self.matched <= fault.skip:
            return False
        if fault.times is not None and self.hits >= fault.times:
            return False
        if fault.probability is not None and self.random.random() >= fault.probability:
            return False
        self.hits += 1
        return True


class FaultPlan:
    def __init__(self, faults: Sequence[Fault]) -> None:
        self._rules = [_Rule(f) for f in faults]
        self._lock = threading.Lock()

    def hits(self) -> list[int]:
        """How many requests each fault has hit so far, in the scenario's order (a delayed
        request counts from the moment it arrives, before its answer is held back)."""
        with self._lock:
            return [rule.hits for rule in self._rules]

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault that hits this request (counting it), or None."""
        with self._lock:
            for rule in self._rules:
                if rule.hits_request(method, path):
                    return rule.fault
        return None
