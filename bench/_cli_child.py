"""`celonis-runner` exactly as users run it, plus what the state file wrote (for bench/run_cli.py).

Usage: python bench/_cli_child.py OUT.json run jobs.yaml --base-url ... [more run options]

Runs `runner.cli.entry` (the console script) unchanged. Only counts: every `StateStore` made in
this process is remembered, and when the process exits the stores' bytes written (snapshot and
journal), writes and compactions go to OUT.json. With $BENCH_PROFILE set, a cProfile of the main
(scheduling) thread goes to that file. CPU is measured by the parent (the resource
usage of this child), so nothing here times anything.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path
from typing import Any

from runner.execution import statefile

_stores: list[statefile.StateStore] = []
_init = statefile.StateStore.__init__


def _remembering_init(self: statefile.StateStore, *args: Any, **kwargs: Any) -> None:
    _init(self, *args, **kwargs)
    _stores.append(self)


def _report(out: Path) -> None:
    facts = {
        "state_bytes": sum(s.bytes_written for s in _stores),
        "state_writes": sum(s.writes for s in _stores),
        "compactions": sum(s.compactions for s in _stores),
    }
    out.write_text(json.dumps(facts), encoding="utf-8")


if __name__ == "__main__":
    out = Path(sys.argv[1])
    del sys.argv[1]
    statefile.StateStore.__init__ = _remembering_init  # type: ignore[method-assign]
    atexit.register(_report, out)
    from runner.cli import entry

    profile = os.environ.get("BENCH_PROFILE")  # cProfile of the scheduling (main) thread
    if profile:
        import cProfile

        atexit.register(lambda: profiler.dump_stats(profile))
        profiler = cProfile.Profile()
        profiler.runcall(entry)
    else:
        entry()
