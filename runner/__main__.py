"""`python -m runner` entry point."""

from runner.cli import entry

entry()
