"""What the commands share: the invocation's context, common options, loading a checked manifest.

Light on purpose (the CLI imports it before parsing): the manifest code is
imported inside the functions that need it. Each command module declares `add_arguments(parser)` and `main(args, ctx)`;
the options several commands take (the manifest FILE, `--max-size`,
`--github`, the connection options) are declared here once.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from runner.errors import ManifestError, UsageError

if TYPE_CHECKING:
    from runner.api.client import CelonisClient
    from runner.logs import Redactor
    from runner.manifest.loader import CheckResult
    from runner.manifest.model import Manifest

DEFAULT_FILE = "jobs.yaml"
STDIN_NAME = "<stdin>"
"""How problems name a manifest read from stdin (`validate -`)."""
ENV_VARIABLE = "CELONIS_RUNNER_ENV"
"""Picks the manifest's environment when `--env` is not given."""


@dataclass
class Context:
    """One invocation: its environment and streams, and what the entry point must do after."""

    environ: Mapping[str, str]
    stdout: TextIO
    stderr: TextIO
    hard_exit: bool = False
    """Set by a command after a second Ctrl-C/SIGTERM: the entry point then exits at once
    (os._exit) instead of waiting for threads still winding down."""
    stdin: TextIO | None = None
    """Where `validate -` reads the manifest (None: sys.stdin)."""
    full_parser: Callable[[], argparse.ArgumentParser] | None = None
    """The CLI's parser with every command's arguments declared (what `completion` walks);
    the CLI hands it over, so that no command imports runner.cli."""

    @property
    def github_actions(self) -> bool:
        return self.environ.get("GITHUB_ACTIONS") == "true"


@dataclass(frozen=True)
class RemoteOptions:
    """Where a command that talks to the API goes: like `run`'s connection options."""

    base_url: str | None = None
    emulator: bool = False
    scenario: str | None = None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def looks_like_manifest(word: str) -> bool:
    """A word that names a manifest rather than a run id: an existing file, or *.yaml/*.yml."""
    return word.endswith((".yaml", ".yml")) or Path(word).is_file()


def add_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        nargs="?",
        default=DEFAULT_FILE,
        metavar="FILE",
        help=f"the manifest (default: {DEFAULT_FILE})",
    )


def scrubbed(text: str, environ: Mapping[str, str]) -> str:
    """`text` without the value of any credential-like environment variable (defence in depth:
    a value may have come from ${VAR})."""
    from runner.logs import Redactor, secret_like_values

    return str(Redactor(secret_like_values(environ)).scrub(text))


def write_columns(rows: Sequence[Sequence[str]], stream: TextIO) -> None:
    """`rows` (the header first) as columns two spaces apart, each as wide as its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        stream.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        stream.write("\n")


def add_manifest_options(parser: argparse.ArgumentParser) -> None:
    from runner.manifest.yamlio import DEFAULT_MAX_BYTES  # here: `--version` reads no YAML

    parser.add_argument(
        "--max-size",
        type=positive_int,
        default=DEFAULT_MAX_BYTES,
        metavar="BYTES",
        help=f"refuse manifests larger than this (default {DEFAULT_MAX_BYTES:,} bytes)",
    )


def add_quiet(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", help=f"fewer lines: only problems and {what}"
    )


def add_github(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--github",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{what}; default: on when GITHUB_ACTIONS=true",
    )


def add_connection(parser: argparse.ArgumentParser) -> None:
    """`--base-url`, `--emulator`, `--scenario`: where the API is."""
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="the Celonis team URL (default: $CELONIS_BASE_URL, then the manifest)",
    )
    parser.add_argument(
        "--emulator", action="store_true", help="talk to the embedded emulator of the Celonis API"
    )
    parser.add_argument(
        "--scenario", metavar="FILE", help="with --emulator: the emulator's scenario file"
    )


def add_env(parser: argparse.ArgumentParser, *, repeat: bool = False) -> None:
    """`--env NAME`: the entry of the manifest's `environments:` to use (its connection and
    defaults); `repeat`: `--env A --env B` (plan --check-remote compares them)."""
    more = "; repeat it to compare environments (with --check-remote)" if repeat else ""
    parser.add_argument(
        "--env",
        action="append" if repeat else "store",
        default=[] if repeat else None,
        metavar="ENV",
        help=f"the environment of the manifest to use (default: ${ENV_VARIABLE}, else the"
        f" top-level connection){more}",
    )


def chosen_env(given: str | None, environ: Mapping[str, str]) -> str | None:
    """The environment: `--env`, else $CELONIS_RUNNER_ENV, else None (the top-level one)."""
    return given or environ.get(ENV_VARIABLE) or None


@contextlib.contextmanager
def remote_client(
    manifest: Manifest, remote: RemoteOptions, environ: Mapping[str, str], stderr: TextIO
) -> Iterator[tuple[CelonisClient, Redactor]]:
    """For a read-only command: its logging to `stderr`, then a client of where `remote` points,
    and the redactor its own output goes through (the HTTP stack is imported only here)."""
    from runner.target import command_logging, connect

    redactor = command_logging(manifest, environ, stderr)
    with connect(
        manifest,
        environ,
        redactor,
        base_url=remote.base_url,
        emulator=remote.emulator,
        scenario=remote.scenario,
    ) as client:
        yield client, redactor


def remote_options(args: argparse.Namespace) -> RemoteOptions:
    if args.scenario and not args.emulator:
        raise UsageError("--scenario goes with --emulator")
    return RemoteOptions(base_url=args.base_url, emulator=args.emulator, scenario=args.scenario)


def github_enabled(args: argparse.Namespace, ctx: Context) -> bool:
    flag: bool | None = getattr(args, "github", None)
    return flag if flag is not None else ctx.github_actions


def load_checked(
    file: str,
    *,
    environ: Mapping[str, str],
    strict_env: bool,
    stderr: TextIO,
    max_bytes: int,
    annotate: bool = False,
    environment: str | None = None,
) -> Manifest:
    """The manifest, with warnings printed; ManifestError on errors.

    `annotate`: also print the warnings as GitHub workflow commands (the CLI
    does the same for errors).
    """
    from runner import problems as out

    result = check_file(
        file, environ, strict_env=strict_env, max_bytes=max_bytes, environment=environment
    )
    if result.manifest is None:
        raise ManifestError(result.problems)
    if annotate:
        out.write_github(result.problems, stderr)
    out.write_text(result.problems, stderr)
    return result.manifest


def check_file(
    file: str,
    environ: Mapping[str, str],
    *,
    strict_env: bool,
    max_bytes: int,
    environment: str | None = None,
    stdin: TextIO | None = None,
) -> CheckResult:
    """check_manifest, and for a missing jobs.yaml beside a jobs.yml (or the other way round):
    "did you mean jobs.yml?". With `stdin`, the file `-` is the manifest read from it,
    named `<stdin>` in problems."""
    import dataclasses

    from runner.manifest.loader import check_manifest

    text = None
    if stdin is not None and file == "-":
        text = stdin.read(max_bytes + 1)
    result = check_manifest(
        Path(file),
        environ,
        strict_env=strict_env,
        display=STDIN_NAME if text is not None else file,
        max_bytes=max_bytes,
        environment=environment,
        text=text,
    )
    other = _other_suffix(Path(file))
    if result.manifest is None and other is not None and not Path(file).exists():
        result.problems = [
            dataclasses.replace(p, message=f"{p.message} (did you mean {other}?)")
            if p.message == "file not found"
            else p
            for p in result.problems
        ]
    return result


def _other_suffix(path: Path) -> str | None:
    """`jobs.yml` for `jobs.yaml` and the reverse, when that file exists."""
    swap = {".yaml": ".yml", ".yml": ".yaml"}
    if path.suffix not in swap:
        return None
    other = path.with_suffix(swap[path.suffix])
    return str(other) if other.is_file() else None
