"""TlsFiles validation and the gRPC and HTTP credentials built from swarm certs init files."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from swarm.shared.certificates import init_certificates
from swarm.shared.tls import TlsFiles, server_credentials, ssl_context_for_http

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    init_certificates(out, [])
    return out


def test_no_flags_means_plaintext() -> None:
    assert TlsFiles.from_flags(None, None, None) is None


def test_cert_and_key_go_together(certs: Path) -> None:
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        TlsFiles.from_flags(str(certs / "node.pem"), None, None)


def test_a_missing_file_is_named(certs: Path) -> None:
    with pytest.raises(ValueError, match=r"--tls-ca: no such file .*nope\.pem"):
        TlsFiles.from_flags(None, None, str(certs / "nope.pem"))


def test_a_ca_alone_cannot_serve(certs: Path) -> None:
    client_only = TlsFiles(ca=certs / "ca.pem")
    with pytest.raises(ValueError, match="a TLS server needs --tls-cert and --tls-key"):
        server_credentials(client_only)


def test_http_context_requires_client_certificates_with_a_ca(certs: Path) -> None:
    mutual = TlsFiles(certs / "node.pem", certs / "node-key.pem", certs / "ca.pem")
    assert ssl_context_for_http(mutual).verify_mode == ssl.CERT_REQUIRED
    server_only = TlsFiles(certs / "node.pem", certs / "node-key.pem")
    assert ssl_context_for_http(server_only).verify_mode == ssl.CERT_NONE
