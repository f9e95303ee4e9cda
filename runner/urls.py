"""Which hosts count as this machine: the only ones `http://` is allowed for (the emulator).

Kept apart from `runner.api` so that checking a manifest never imports the HTTP stack.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1, also in brackets)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
