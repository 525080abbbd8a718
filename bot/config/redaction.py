"""Masking secret-bearing values in configuration data before it is logged or stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "**********"
# keys whose whole value is the credential (the path of a Slack/Discord webhook is its secret)
CREDENTIAL_URL_KEYS = frozenset({"webhook_url"})


def redact_url(url: str, keep_path: bool = True) -> str:
    """``url`` without userinfo and query (and, unless ``keep_path``, without its path)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    netloc = (f"{MASK}@" if parts.username or parts.password else "") + host + port
    path = parts.path if keep_path else (f"/{MASK}" if parts.path.strip("/") else "")
    query = MASK if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, MASK if parts.fragment else ""))


def redact(data: Any, key: str = "") -> Any:
    """A copy of JSON-like ``data`` with every URL's credentials masked."""
    if isinstance(data, dict):
        return {k: redact(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v, key) for v in data]
    if isinstance(data, str) and "://" in data:
        return redact_url(data, keep_path=key not in CREDENTIAL_URL_KEYS)
    return data
