"""celonis-runner: run Celonis data jobs declaratively from git and CI."""

__version__ = "0.1.0"
