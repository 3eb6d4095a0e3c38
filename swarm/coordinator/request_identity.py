"""Whose request an id names, and which request: ids scoped per API key, and a digest telling a retry from another.

A client picks its request ids, so two API keys may pick the same one, by chance or to read
another's completion. Each key therefore has its own namespace: the swarm keeps a request
under the client's id prefixed with its key's owner digest, so the same id sent with another
key names another request (that key's own, or none), and nothing tells the sender whether the
id exists elsewhere. Within one namespace an id names one request: a retry must send the same
fields, and anything else is refused rather than answered with that request's text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace

from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import GenerationRequest, RawRequest

# No client id contains it (validation.REQUEST_ID_PATTERN), so a scoped id splits one way only.
OWNER_SEPARATOR = "/"
# Domain separation: the owner digest of a key is no digest used anywhere else for that key.
_OWNER_SALT = b"swarm request owner\0"


def owner_of_key(api_key: str) -> str:
    """The owner of the requests made with api_key: a digest, so the key itself never reaches Redis or logs."""
    return hashlib.sha256(_OWNER_SALT + api_key.encode()).hexdigest()[:32]


def scoped_request_id(owner: str, request_id: str) -> str:
    """The id the swarm keeps a request under; owner "" (a coordinator without API keys) is the shared namespace.

    The batch runner's requests live there too, under ids starting with `batch-`, which no
    client may use (validation.check_client_request_id) and no scoped id starts with.
    """
    return f"{owner}{OWNER_SEPARATOR}{request_id}" if owner else request_id


def client_request_id(scoped_id: str) -> str:
    """The id as its client sent it, for messages to that client."""
    return scoped_id.rpartition(OWNER_SEPARATOR)[2]


def request_fingerprint(raw: RawRequest) -> str:
    """A digest of what the client asked for, not of how far it got: the same for every retry of one request."""
    asked = asdict(replace(raw, request_id="", resume_after_tokens=0))
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


def check_same_request(kept: GenerationRequest, fingerprint: str) -> None:
    """Raises ALREADY_EXISTS when the kept request under this id is not the one the caller asks for."""
    if kept.fingerprint and kept.fingerprint != fingerprint:  # "": kept by a coordinator without fingerprints
        raise SwarmError(
            ErrorCode.ALREADY_EXISTS,
            f"request_id: {client_request_id(kept.request_id)!r} already names another request of this API key "
            "(other prompt or parameters); send a new request with a new request_id",
        )
