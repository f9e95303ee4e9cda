"""`python -m runner` entry point."""

from runner.cli import main

raise SystemExit(main())
