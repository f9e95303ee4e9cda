"""Benchmark: what one API request costs the runner's thread, above what requests itself costs.

A local server (ThreadingHTTPServer on 127.0.0.1, keep-alive) answers every GET
with a small JSON document. Two clients take turns, in rounds of --calls
requests each, on the same server: `Transport.get_json` (the runner's path:
retry loop, overall deadline, size-capped read, error mapping, logging set up
like a run at the default level) and the baseline, the least a request costs
with requests and urllib3: one prepared request sent again and again through
`Session.send` on its own session, its JSON parsed. The CPU time of the
calling thread is measured (`time.thread_time`: not the server's threads, not
the deadline watchdog). Printed: microseconds per call of each and the ratio
ours/baseline (median of the rounds); target <= 2.0 (it was 2.5-3.0 while each
request started a timer thread and read the environment: bench/README.md).

Run:  .venv/bin/python bench/http_request.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.server
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from _common import BENCH_API_KEY, machine, quiet_logs

from runner.api import KeyAuth, Secret, Transport
from runner.clock import SystemClock

PATH = "/integration/api/pools"
BODY = json.dumps({"content": [{"id": "p1", "name": "pool one"}], "pageNumber": 0}).encode()
TARGET = 2.0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Celonis answers

    def do_GET(self) -> None:
        # One write: a head and a body written apart would meet Nagle and delayed ACKs.
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}"
        self.wfile.write(head.encode() + b"\r\n\r\n" + BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def json_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def clients(url: str) -> dict[str, Callable[[], object]]:
    """The two ways to make one request and read its JSON."""
    auth = KeyAuth("Bearer", Secret(BENCH_API_KEY), "CELONIS_API_KEY")
    transport = Transport(url, auth, requests.Session(), SystemClock())
    session = requests.Session()
    prepared = session.prepare_request(
        requests.Request("GET", url + PATH, headers={"Authorization": "Bearer x"})
    )

    def ours() -> object:
        return transport.get_json(PATH)

    def baseline() -> object:
        return session.send(prepared, timeout=(5.0, 30.0), proxies={}).json()

    return {"ours": ours, "baseline": baseline}


def per_call_us(call: Callable[[], object], calls: int) -> float:
    started = time.thread_time()
    for _ in range(calls):
        call()
    return (time.thread_time() - started) * 1e6 / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(machine())
    quiet_logs()
    with json_server() as url:
        made = clients(url)
        for call in made.values():  # connections open, caches warm
            for _ in range(50):
                call()
        times: dict[str, list[float]] = {name: [] for name in made}
        for _ in range(args.rounds):  # the clients take turns: load from elsewhere hits both
            for name, call in made.items():
                times[name].append(per_call_us(call, args.calls))
    ours, baseline = (statistics.median(times[name]) for name in ("ours", "baseline"))
    print(f"Transport.get_json: {ours:.0f} us CPU per call (median of {args.rounds} rounds)")
    print(f"baseline, Session.send of one prepared request: {baseline:.0f} us CPU per call")
    ratio = ours / baseline
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"ratio ours/baseline: {ratio:.2f} ({verdict} the target <= {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
