"""An emulator of the Celonis data-job API for tests and demos: scenarios, faults, a journal.

    from runner.emulator import Emulator, Scenario, load_scenario

See README.md in this folder for the scenario file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.emulator.scenario import (
        Fault,
        RateLimit,
        Scenario,
        ScenarioError,
        ScenarioJob,
        ScenarioPool,
        ScenarioTask,
        load_scenario,
    )
    from runner.emulator.server import Emulator
    from runner.emulator.tls import TlsFiles, make_certificates

_WHERE = {
    "Emulator": "runner.emulator.server",
    "Fault": "runner.emulator.scenario",
    "RateLimit": "runner.emulator.scenario",
    "Scenario": "runner.emulator.scenario",
    "ScenarioError": "runner.emulator.scenario",
    "ScenarioJob": "runner.emulator.scenario",
    "ScenarioPool": "runner.emulator.scenario",
    "ScenarioTask": "runner.emulator.scenario",
    "TlsFiles": "runner.emulator.tls",
    "load_scenario": "runner.emulator.scenario",
    "make_certificates": "runner.emulator.tls",
}


def __getattr__(name: str) -> Any:
    """Imported on first use, so that the CLI can build its parser without loading the emulator."""
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Emulator",
    "Fault",
    "RateLimit",
    "Scenario",
    "ScenarioError",
    "ScenarioJob",
    "ScenarioPool",
    "ScenarioTask",
    "TlsFiles",
    "load_scenario",
    "make_certificates",
]
