"""Proxies from the environment (HTTP_PROXY, NO_PROXY) reach a Transport's requests as
requests itself would apply them; the Transport reads the environment once, when made.

The "proxy" is a local server that records the request line (absolute-form through a
proxy, `GET http://host/... HTTP/1.1`) and answers JSON itself.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import requests

from runner.api import KeyAuth, NetworkError, RetryPolicy, Secret, Transport
from tests.emulator_fixtures import FakeClock
from tests.test_api_answers import KEY, answer, local_server, trickle

PROXY_VARIABLES = (
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",  # with it set, urllib ignores HTTP_PROXY (CGI)
)
PATH = "/integration/api/pools"


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@contextmanager
def recording_server(name: str, seen: list[str]) -> Iterator[str]:
    """A server answering `{"via": name}` that notes every request line in `seen`."""
    reply = answer(200, {"via": name})

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        seen.append(h.requestline)
        reply(h)

    with local_server(handle) as url:
        yield url


@dataclass
class Servers:
    """A recording "proxy" and a recording server, with the request lines each one saw."""

    proxy: str
    url: str
    proxied: list[str] = field(default_factory=list)
    direct: list[str] = field(default_factory=list)


@contextmanager
def proxy_and_server() -> Iterator[Servers]:
    proxied: list[str] = []
    direct: list[str] = []
    with recording_server("proxy", proxied) as proxy, recording_server("server", direct) as url:
        yield Servers(proxy, url, proxied, direct)


def transport_for(
    url: str, session: requests.Session | None = None, deadline: float = 120.0
) -> Transport:
    return Transport(
        url,
        KeyAuth("Bearer", Secret(KEY), "CELONIS_API_KEY"),
        session or requests.Session(),
        FakeClock(),
        timeouts=(2.0, 5.0),
        retry=RetryPolicy(max_attempts=1),
        deadline=deadline,
    )


def test_requests_go_through_the_proxy_that_http_proxy_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with proxy_and_server() as s:
        monkeypatch.setenv("HTTP_PROXY", s.proxy)
        transport = transport_for(s.url)
        assert transport.get_json(PATH, {"page": 2}) == {"via": "proxy"}
        assert transport.get_json(PATH) == {"via": "proxy"}
    assert s.proxied == [f"GET {s.url}{PATH}?page=2 HTTP/1.1", f"GET {s.url}{PATH} HTTP/1.1"]
    assert s.direct == []


def test_no_proxy_covering_the_host_sends_requests_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with proxy_and_server() as s:
        monkeypatch.setenv("HTTP_PROXY", s.proxy)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert transport_for(s.url).get_json(PATH) == {"via": "server"}
    assert s.direct == [f"GET {PATH} HTTP/1.1"]
    assert s.proxied == []


def test_the_environment_is_read_when_the_transport_is_made_not_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with proxy_and_server() as s:
        transport = transport_for(s.url)
        monkeypatch.setenv("HTTP_PROXY", s.proxy)
        assert transport.get_json(PATH) == {"via": "server"}
        assert transport_for(s.url).get_json(PATH) == {"via": "proxy"}
    assert len(s.direct) == 1 and len(s.proxied) == 1


def test_a_session_that_does_not_trust_the_environment_keeps_its_own_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxied: list[str] = []
    direct: list[str] = []
    other: list[str] = []
    with (
        recording_server("proxy", proxied) as proxy,
        recording_server("server", direct) as url,
        recording_server("other", other) as ignored,
    ):
        monkeypatch.setenv("HTTP_PROXY", ignored)
        session = requests.Session()
        session.trust_env = False
        session.proxies = {"http": proxy}
        assert transport_for(url, session).get_json(PATH) == {"via": "proxy"}
    assert proxied == [f"GET {url}{PATH} HTTP/1.1"]
    assert direct == [] and other == []


def test_the_deadline_cuts_an_answer_trickling_through_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = threading.Event()
    with local_server(trickle(headers_too=False, stop=stop)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        transport = transport_for("http://celonis.invalid", deadline=1.0)
        started = time.monotonic()
        try:
            with pytest.raises(NetworkError) as caught:
                transport.get_json(PATH)
        finally:
            stop.set()
        took = time.monotonic() - started
    assert "no complete answer within 1 s" in str(caught.value)
    assert 0.9 <= took < 3.0
