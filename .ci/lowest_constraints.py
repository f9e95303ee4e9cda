"""Print pip constraints that pin every declared dependency to its lowest declared version.

`make test-lowest` installs with them, so a lower bound in pyproject.toml that is too low (an
API the code uses that the floor lacks) fails CI instead of a user's installation.
Reads [project].dependencies and the extras named on the command line (default: test).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+?)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def main(extras: list[str]) -> int:
    project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = list(project["dependencies"])
    for extra in extras:
        declared += project.get("optional-dependencies", {}).get(extra, [])
    for requirement in declared:
        match = FLOOR.match(requirement)
        if match:
            name = re.sub(r"\[.*\]$", "", match.group(1))
            print(f"{name}=={match.group(2)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["test"]))
