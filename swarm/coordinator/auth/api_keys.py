"""Client API keys: where the coordinator reads them from, and the constant-time check every client call passes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

from swarm.shared.auth import RefusalLog

HOW_TO_PASS = (
    "pass an API key as 'authorization: Bearer KEY' (gRPC metadata or HTTP header; "
    "swarm --api-key KEY or $SWARM_API_KEY; SwarmClient(api_key=KEY))"
)


def parse_api_keys(text: str) -> list[str]:
    """One key per line; blank lines and `#` comments are skipped."""
    keys = []
    for line in text.splitlines():
        key = line.split("#", 1)[0].strip()
        if key:
            keys.append(key)
    return keys


def collect_api_keys(flags: Iterable[str], keys_file: str | None, env_value: str | None) -> tuple[str, ...]:
    """The keys of --api-key (repeatable), --api-keys-file and $SWARM_API_KEYS (comma-separated), without repeats.

    Raises ValueError when the file cannot be read."""
    keys = [k.strip() for k in flags]
    if keys_file:
        try:
            keys += parse_api_keys(Path(keys_file).read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--api-keys-file: cannot read {keys_file!r}: {exc}") from exc
    if env_value:
        keys += [k.strip() for k in env_value.split(",") if k.strip()]
    return tuple(dict.fromkeys(keys))


def check_api_key_format(keys: Iterable[str]) -> None:
    """Raises ValueError for a key that cannot travel in a header (the message never shows the key)."""
    for number, key in enumerate(keys, start=1):
        if not key or not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
            raise ValueError(f"API key #{number} must be printable ASCII without spaces")


def bearer_key(authorization: str | None) -> str | None:
    """KEY of an `authorization` value `Bearer KEY`; None for anything else."""
    scheme, _, key = (authorization or "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


def _digest(key: str) -> bytes:
    # Comparing fixed-length digests keeps even a key's length from leaking through timing.
    return hashlib.sha256(key.encode()).digest()


class ApiKeyCheck:
    """Checks a presented key against every configured key in constant time, and logs refusals."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(k) for k in keys]
        self._refusals = RefusalLog()

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def allows(self, presented: str | None) -> bool:
        """True when no key is required or presented is one of the keys."""
        if not self._digests:
            return True
        candidate = _digest(presented or "")
        matched = False
        for digest in self._digests:  # no early exit: every key takes the same time
            matched |= hmac.compare_digest(candidate, digest)
        return matched and bool(presented)

    def allows_bearer(self, authorization: str | None) -> bool:
        """The same for an `authorization` value of the form `Bearer KEY`."""
        return self.allows(bearer_key(authorization))

    def log_refusal(self, what: str, peer: str | None) -> None:
        self._refusals.warn(what, peer, "wrong or missing API key")
