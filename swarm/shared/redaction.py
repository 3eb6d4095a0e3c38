"""Secrets kept out of logs and error messages: the passwords in a URL such as redis://:PASSWORD@host:6379/0."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"
# ?password= (unix:// sockets) and a redis+sentinel:// URL's ?sentinel_password=.
_QUERY_PASSWORD = re.compile(r"(?:(?<=[?&]password=)|(?<=[?&]sentinel_password=))[^&#]*")


def _passwords(url: str) -> list[str]:
    """The passwords a URL carries: after the user name and in a ?password= or ?sentinel_password= query."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:
        found = []
    found += _QUERY_PASSWORD.findall(url)
    return [p for p in found if p]


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        parts = urlsplit(url)
        has_password = bool(parts.password)
    except ValueError:
        return "<unparsable URL>"
    if has_password:
        user, _, host = parts.netloc.rpartition("@")
        url = parts._replace(netloc=f"{user.partition(':')[0]}:{MASK}@{host}").geturl()
    return _QUERY_PASSWORD.sub(MASK, url)


def scrub(text: str, url: str) -> str:
    """text with the URL's passwords, raw or percent-decoded, replaced by *** (for exception messages)."""
    for password in _passwords(url):
        for secret in {password, unquote(password)}:
            text = text.replace(secret, MASK)
    return text
