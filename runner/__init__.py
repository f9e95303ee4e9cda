"""celonis-runner: run Celonis data jobs declaratively from git and CI."""

from __future__ import annotations

DIST_NAME = "celonis-runner"
SOURCE_VERSION = "0+source"
"""What `--version` says in a source checkout that was never installed."""


def version() -> str:
    """The installed package's version (the one place it is set is pyproject.toml)."""
    from importlib import metadata

    try:
        return metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:
        return SOURCE_VERSION


def __getattr__(name: str) -> str:
    # `runner.__version__` is looked up lazily: importing runner must stay cheap.
    if name == "__version__":
        return version()
    raise AttributeError(f"module 'runner' has no attribute {name!r}")
