"""Which certificates the client trusts: the system's default, or a CA bundle named in the environment.

`requests` reads `REQUESTS_CA_BUNDLE` (and `CURL_CA_BUNDLE`) from the process
environment but ignores `SSL_CERT_FILE`, which most other tools honour. The
runner reads all three from the injected environment (in that order) and
passes the file to every request. Verification is never turned off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runner.errors import UsageError

CA_BUNDLE_ENVS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
TRUST_HINT = (
    "to trust a private or self-signed CA, set REQUESTS_CA_BUNDLE or SSL_CERT_FILE to its PEM file"
)


def ca_bundle(environ: Mapping[str, str]) -> str | None:
    """The CA bundle file the environment names, or None (the default trust store).

    UsageError when the named file does not exist, naming the variable.
    """
    for name in CA_BUNDLE_ENVS:
        path = environ.get(name, "").strip()
        if not path:
            continue
        if not os.path.isfile(path):
            raise UsageError(
                f"${name} names {path!r}, which is not a file: set it to the PEM file of the"
                " CA that signed the Celonis server's certificate, or unset it"
            )
        return path
    return None
