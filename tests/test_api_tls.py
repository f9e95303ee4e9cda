"""The client over HTTPS: a private CA trusted through the environment, an untrusted one refused.

The test makes its own CA and server certificate with the `openssl` command
(trustme is not installed here) and serves HTTPS on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from runner.api import CelonisClient, KeyAuth, NetworkError, RetryPolicy, Secret
from runner.api.tls import ca_bundle
from runner.errors import ExitCode, UsageError
from tests.emulator_fixtures import FakeClock

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=celonis-runner test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1",
        cwd=d,
    )  # fmt: skip
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "authorityKeyIdentifier=keyid,issuer\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
        cwd=d,
    )  # fmt: skip
    return d


@pytest.fixture
def https_url(certs: Path) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'[{"id": "p1", "name": "SAP"}]'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, environ: dict[str, str]) -> CelonisClient:
    return CelonisClient.connect(
        url,
        KeyAuth("Bearer", Secret("k" * 20), "CELONIS_API_KEY"),
        requests.Session(),
        FakeClock(),
        timeouts=(2.0, 5.0),
        retry=RetryPolicy(max_attempts=3),
        ca_bundle=ca_bundle(environ),
    )


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_private_ca_named_in_the_environment_is_trusted(
    certs: Path, https_url: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests itself would read REQUESTS_CA_BUNDLE from the process: keep it out.
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    pools = _client(https_url, {variable: str(certs / "ca.pem")}).list_pools()
    assert [p.id for p in pools] == ["p1"]


def test_an_untrusted_certificate_is_refused_with_a_way_to_trust_it(
    https_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(NetworkError) as caught:
        _client(https_url, {}).list_pools()
    error = caught.value
    assert error.kind == "tls" and not error.transient
    assert error.exit_code == ExitCode.API_UNUSABLE
    text = str(error)
    assert "not trusted" in text and "REQUESTS_CA_BUNDLE" in text and "SSL_CERT_FILE" in text
    assert "self-signed" in text or "unable to get local issuer" in text


def test_a_ca_bundle_variable_naming_no_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        ca_bundle({"SSL_CERT_FILE": str(tmp_path / "missing.pem")})
    assert "$SSL_CERT_FILE" in str(caught.value)
