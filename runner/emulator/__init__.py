"""An emulator of the Celonis data-job API for tests and demos: scenarios, faults, a journal.

    from runner.emulator import Emulator, Scenario, load_scenario

See README.md in this folder for the scenario file.
"""

from __future__ import annotations

from runner.emulator.scenario import (
    Fault,
    RateLimit,
    Scenario,
    ScenarioError,
    ScenarioJob,
    ScenarioPool,
    load_scenario,
)
from runner.emulator.server import Emulator

__all__ = [
    "Emulator",
    "Fault",
    "RateLimit",
    "Scenario",
    "ScenarioError",
    "ScenarioJob",
    "ScenarioPool",
    "load_scenario",
]
