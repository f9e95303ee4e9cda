"""`celonis-runner emulator`: serve a scenario (and/or a manifest's jobs) until SIGINT or SIGTERM.

Keys come only from environment variables; with no API key set, the
emulator makes a throwaway one and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shlex
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from runner.errors import ExitCode, UsageError

if TYPE_CHECKING:  # the CLI builds its parser with add_arguments: keep this module light
    from runner.emulator.scenario import Scenario
    from runner.emulator.server import Emulator
    from runner.emulator.tls import TlsFiles


DEFAULT_PORT = 8491
"""Not 8080 (Airflow's api-server, and many another server's): a runner pointed at the wrong
one would talk to whatever answers there."""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {value}")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _offset(text: str) -> float:
    from runner.emulator.scenario import parse_signed_duration

    try:
        return parse_signed_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", type=Path, metavar="FILE", help="scenario YAML (see the emulator README)"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="serve the pools and jobs of this jobs.yaml (the scenario's jobs and settings win)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port to listen on; 0 picks a free one ({DEFAULT_PORT})",
    )
    parser.add_argument("--journal", type=Path, metavar="FILE", help="write the journal here")
    parser.add_argument(
        "--time-scale",
        type=_scale,
        metavar="X",
        help="virtual seconds per real second (overrides the scenario's time_scale)",
    )
    parser.add_argument(
        "--clock-offset",
        type=_offset,
        metavar="DURATION",
        help="Celonis' clock ahead of this machine's by this much, e.g. 90s or (with =) "
        "--clock-offset=-2m: shifts every date shown (overrides the scenario's clock_offset)",
    )
    _add_tls_arguments(parser)
    parser.add_argument(
        "--api-key-env",
        default="CELONIS_API_KEY",
        metavar="NAME",
        help="environment variable with the accepted Bearer API key (CELONIS_API_KEY)",
    )
    parser.add_argument(
        "--app-key-env",
        default="CELONIS_APP_KEY",
        metavar="NAME",
        help="environment variable with the accepted AppKey (CELONIS_APP_KEY)",
    )
    parser.add_argument(
        "--oauth-client-id-env",
        default="CELONIS_CLIENT_ID",
        metavar="NAME",
        help="environment variable with the accepted OAuth client id (CELONIS_CLIENT_ID)",
    )
    parser.add_argument(
        "--oauth-client-secret-env",
        default="CELONIS_CLIENT_SECRET",
        metavar="NAME",
        help="environment variable with that client's secret (CELONIS_CLIENT_SECRET)",
    )


def _add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate made at start (needs celonis-runner[tls])",
    )
    parser.add_argument(
        "--tls-dir",
        type=Path,
        metavar="DIR",
        help="where --tls writes its certificates (next to --journal, else .celonis-runner/tls)",
    )
    parser.add_argument(
        "--tls-cert", type=Path, metavar="FILE", help="serve HTTPS with this PEM certificate"
    )
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="the PEM key of --tls-cert")


def build_scenario(args: argparse.Namespace, environ: Mapping[str, str]) -> Scenario:
    from runner.emulator.scenario import Scenario, load_scenario

    scenario = load_scenario(args.scenario) if args.scenario is not None else None
    if args.manifest is not None:
        from runner.manifest.loader import load_manifest

        manifest = load_manifest(args.manifest, environ, strict_env=False)
        scenario = Scenario.from_manifest(manifest, base=scenario)
    scenario = scenario if scenario is not None else Scenario()
    if args.time_scale is not None:
        scenario = dataclasses.replace(scenario, time_scale=args.time_scale)
    if args.clock_offset is not None:
        scenario = dataclasses.replace(scenario, clock_offset=args.clock_offset)
    return scenario


def main(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    stdout: TextIO,
    *,
    stop: threading.Event | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM (or until `stop` is set, for tests); 0 after a clean stop."""
    from runner.clock import ScaledClock, time_origin
    from runner.emulator.server import Emulator

    scenario = build_scenario(args, environ)
    origin = time_origin(environ)
    api_key = environ.get(args.api_key_env) or None
    app_key = environ.get(args.app_key_env) or None
    oauth_clients = _oauth_clients(args, environ)
    tls = _tls_files(args)
    emulator = Emulator(
        scenario,
        clock=ScaledClock(scenario.time_scale, origin),
        host=args.host,
        port=args.port,
        api_keys=[api_key] if api_key else None,
        app_keys=[app_key] if app_key else None,
        oauth_clients=oauth_clients,
        journal_path=args.journal,
        tls=tls,
    )
    stop = stop if stop is not None else threading.Event()
    with _stop_on_signals(stop):
        emulator.start()
        try:
            lines = _start_lines(
                emulator, args, tls, throwaway=api_key is None, own_origin=origin is None
            )
            stdout.writelines(lines)
            stdout.flush()
            while not stop.wait(0.2):
                pass
        finally:
            emulator.stop()
    stdout.write("emulator stopped\n")
    stdout.flush()
    return ExitCode.OK


def _oauth_clients(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The OAuth client the emulator accepts, from the environment; None: no OAuth."""
    client_id = environ.get(args.oauth_client_id_env) or None
    client_secret = environ.get(args.oauth_client_secret_env) or None
    if (client_id is None) != (client_secret is None):
        raise UsageError(
            f"OAuth needs both {args.oauth_client_id_env} and {args.oauth_client_secret_env} "
            "set, or neither"
        )
    return {client_id: client_secret} if client_id and client_secret else None


def _start_lines(
    emulator: Emulator,
    args: argparse.Namespace,
    tls: TlsFiles | None,
    *,
    throwaway: bool,
    own_origin: bool = True,
) -> list[str]:
    """Where it listens, its time scale, the certificate, and the runner command that fits.

    The command names the clock's origin unless it came from the environment (`own_origin`
    False), where a runner started from the same shell finds it too."""
    from runner.clock import TIME_ORIGIN_ENV, TIME_SCALE_ENV, ScaledClock
    from runner.emulator.tls import trust_hint

    scale = emulator.scenario.time_scale
    lines = [f"emulator listening on {emulator.base_url}\n"]
    if scale == 1:
        lines.append("emulator time scale: 1 (real time)\n")
    else:
        lines.append(
            f"emulator time scale: {scale:g} virtual seconds per real second"
            f" (a 10-minute job takes {600 / scale:.3g} s)\n"
        )
    env: list[str] = []
    if throwaway:
        key = emulator.api_key
        lines.append(f"emulator API key (throwaway, made up for this run): {key}\n")
        env.append(f"{args.api_key_env}={key}")
    if tls is not None:
        ca = tls.ca or tls.cert
        lines.append(f"emulator certificate: {ca}; {trust_hint(tls)}\n")
        env += [f"SSL_CERT_FILE={ca}", f"REQUESTS_CA_BUNDLE={ca}"]
    if scale != 1:
        # the runner's clock must run as fast, or every job seems to last one poll interval
        env.append(f"{TIME_SCALE_ENV}={scale:g}")
        if own_origin and isinstance(emulator.clock, ScaledClock):
            # and from the same origin, or its dates drift from the emulator's by
            # (the time between the two starts) x scale
            env.append(f"{TIME_ORIGIN_ENV}={emulator.clock.origin:.6f}")
    manifest = f" {shlex.quote(str(args.manifest))}" if args.manifest is not None else ""
    command = " ".join([*env, f"celonis-runner run{manifest} --base-url {_reachable(emulator)}"])
    lines.append(f"run the runner against it: {command}\n")
    return lines


def _reachable(emulator: Emulator) -> str:
    """The URL a runner on this machine uses: a wildcard address (0.0.0.0, ::) is no place to
    connect to, and the runner takes http:// only on loopback."""
    url = emulator.base_url
    for wildcard, loopback in (("//0.0.0.0:", "//127.0.0.1:"), ("//[::]:", "//[::1]:")):
        url = url.replace(wildcard, loopback)
    return url


def _tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The certificate to serve: the user's own, one made now (`--tls`), or None (HTTP)."""
    from runner.emulator.tls import TlsFiles, make_certificates

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together: give both, or use --tls")
    if args.tls_cert is not None:
        for name, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
            if not path.is_file():
                raise UsageError(f"{name} {path}: no such file")
        return TlsFiles(args.tls_cert, args.tls_key, None)
    if not args.tls:
        if args.tls_dir is not None:
            raise UsageError("--tls-dir is only used with --tls")
        return None
    directory = _tls_dir(args)
    try:
        return make_certificates(directory)
    except OSError as exc:
        raise UsageError(
            f"cannot write the certificates into {directory}: {exc.strerror or exc}; "
            "choose another folder with --tls-dir"
        ) from None


def _tls_dir(args: argparse.Namespace) -> Path:
    """Where `--tls` writes its certificates: --tls-dir, else beside the journal."""
    directory: Path
    if args.tls_dir is not None:
        directory = args.tls_dir
    elif args.journal is not None:
        directory = args.journal.parent
    else:
        directory = Path(".celonis-runner") / "tls"
    return directory


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set `stop` on SIGINT and SIGTERM (only the main thread can take signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
