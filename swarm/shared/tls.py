"""TLS for every endpoint: the certificate files a process uses, and the gRPC and HTTP credentials built from them.

One TlsFiles serves a process both ways: a server presents cert/key and, given a CA,
requires client certificates signed by it (mutual TLS); a client verifies servers
against the CA (system roots without one) and presents cert/key when it has them.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ChannelOptions = Sequence[tuple[str, Any]]


def _readable(flag: str, path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"{flag}: no such file {str(path)!r}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{flag}: cannot read {str(path)!r}")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path | None = None  # PEM certificate chain this process presents
    key: Path | None = None  # its PEM private key
    ca: Path | None = None  # PEM CA bundle peers must be signed by; servers then require client certificates

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.cert is None and self.ca is None:
            raise ValueError("TLS needs --tls-cert/--tls-key, --tls-ca, or both")
        for flag, path in (("--tls-cert", self.cert), ("--tls-key", self.key), ("--tls-ca", self.ca)):
            if path is not None:
                _readable(flag, path)

    @classmethod
    def from_flags(cls, cert: str | None, key: str | None, ca: str | None) -> TlsFiles | None:
        """The files named by --tls-cert/--tls-key/--tls-ca, or None when no flag is given (plaintext)."""
        if not (cert or key or ca):
            return None
        return cls(Path(cert) if cert else None, Path(key) if key else None, Path(ca) if ca else None)

    def require_server(self) -> None:
        """Raises ValueError unless these files can serve (a server needs a certificate and its key)."""
        if self.cert is None:
            raise ValueError("a TLS server needs --tls-cert and --tls-key")


def _pem(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def server_credentials(tls: TlsFiles) -> Any:
    """grpc server credentials; with a CA, clients must present a certificate it signed."""
    tls.require_server()
    pair = (_pem(tls.key), _pem(tls.cert))
    ca = _pem(tls.ca)
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(tls: TlsFiles) -> Any:
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(tls.ca), private_key=_pem(tls.key), certificate_chain=_pem(tls.cert)
    )


def channel(address: str, tls: TlsFiles | None, options: ChannelOptions = ()) -> grpc.Channel:
    """A blocking gRPC channel to address: TLS when tls is given, plaintext otherwise."""
    if tls is None:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(address, channel_credentials(tls), options=list(options))


def aio_channel(address: str, tls: TlsFiles | None, options: ChannelOptions = ()) -> grpc.aio.Channel:
    """The asyncio twin of channel()."""
    if tls is None:
        return grpc.aio.insecure_channel(address, options=list(options))
    return grpc.aio.secure_channel(address, channel_credentials(tls), options=list(options))


def ssl_context_for_http(tls: TlsFiles) -> ssl.SSLContext:
    """A server-side context for aiohttp; with a CA, clients must present a certificate it signed."""
    tls.require_server()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls.cert), str(tls.key))
    if tls.ca is not None:
        context.load_verify_locations(cafile=str(tls.ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
