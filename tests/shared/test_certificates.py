"""swarm certs init's logic: a CA, node certificates with the right names and uses, private keys, no overwrite."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from swarm.shared.certificates import CertificatesExist, init_certificates, subject_hosts

pytestmark = pytest.mark.timeout(30)


def test_node_certificate_is_signed_by_the_ca_and_names_every_host(tmp_path: Path) -> None:
    issued = init_certificates(tmp_path, ["coord.lan", "10.0.0.7"])
    ca = x509.load_pem_x509_certificate(issued.ca_cert.read_bytes())
    cert_path, _ = issued.nodes[0]
    node = x509.load_pem_x509_certificate(cert_path.read_bytes())
    node.verify_directly_issued_by(ca)
    names = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"coord.lan", "localhost"}
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    uses = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(uses)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    issued = init_certificates(tmp_path, [], nodes=2)
    keys = [issued.ca_key, *(key for _, key in issued.nodes)]
    assert [k.name for k in keys] == ["ca-key.pem", "node-1-key.pem", "node-2-key.pem"]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    first = init_certificates(tmp_path, [])
    before = first.ca_cert.read_bytes()
    with pytest.raises(CertificatesExist, match="--force"):
        init_certificates(tmp_path, [])
    assert first.ca_cert.read_bytes() == before
    second = init_certificates(tmp_path, [], force=True)
    assert second.ca_cert.read_bytes() != before


@pytest.mark.parametrize("bad", ["bad host", "a/b", "x@y", "-lead.example"])
def test_bad_host_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="--hosts"):
        subject_hosts([bad])


def test_bad_node_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--nodes"):
        init_certificates(tmp_path, [], nodes=0)
