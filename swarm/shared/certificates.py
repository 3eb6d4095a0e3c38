"""A private certificate authority for one swarm: a CA and node certificates signed by it (`swarm certs init`).

Every node certificate serves and dials (server and client auth), so one pair per PC
covers the coordinator, workers, pipeline stages and clients, mutual TLS included.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ALWAYS_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
NODE_DAYS = 825
HOST_NAME = re.compile(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")


class CertificatesExist(FileExistsError):
    """The output folder already holds certificates; overwriting needs force."""


@dataclass(frozen=True)
class IssuedFiles:
    ca_cert: Path
    ca_key: Path
    nodes: tuple[tuple[Path, Path], ...]  # (certificate, key) per node
    hosts: tuple[str, ...]  # the subject alternative names of every node certificate


def node_file_names(nodes: int) -> list[tuple[str, str]]:
    """node.pem/node-key.pem for one node; node-1.pem/node-1-key.pem ... for several."""
    if nodes == 1:
        return [("node.pem", "node-key.pem")]
    return [(f"node-{i}.pem", f"node-{i}-key.pem") for i in range(1, nodes + 1)]


def subject_hosts(hosts: list[str]) -> tuple[str, ...]:
    """The given hosts plus localhost and the loopback addresses, without repeats; raises ValueError on a bad name."""
    result: list[str] = []
    for host in [*hosts, *ALWAYS_HOSTS]:
        host = host.strip().strip("[]")
        if not (_is_ip(host) or HOST_NAME.fullmatch(host)):
            raise ValueError(f"--hosts: {host!r} is not a host name or IP address")
        if host not in result:
            result.append(host)
    return tuple(result)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _alt_name(host: str) -> x509.GeneralName:
    if _is_ip(host):
        return x509.IPAddress(ipaddress.ip_address(host))
    return x509.DNSName(host)


def _write_private(path: Path, data: bytes) -> None:
    """Writes a key readable by its owner only, never briefly readable by others."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue_ca(now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "swarm CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue_node(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    hosts: tuple[str, ...],
    now: datetime.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=NODE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in hosts]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def init_certificates(out: Path, hosts: list[str], nodes: int = 1, force: bool = False) -> IssuedFiles:
    """Creates ca.pem, ca-key.pem and the node certificates in out; keys are 0600.

    Raises CertificatesExist when a file would be overwritten and force is false, and
    ValueError on a bad host or node count.
    """
    if not 1 <= nodes <= 1000:
        raise ValueError(f"--nodes must be between 1 and 1000, got {nodes}")
    names = subject_hosts(hosts)
    node_names = node_file_names(nodes)
    targets = [out / "ca.pem", out / "ca-key.pem", *(out / n for pair in node_names for n in pair)]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        listed = ", ".join(p.name for p in existing)
        raise CertificatesExist(f"{out} already holds {listed}; pass --force to replace them")
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_cert = _issue_ca(now)
    _write_private(out / "ca-key.pem", _key_pem(ca_key))
    (out / "ca.pem").write_bytes(_cert_pem(ca_cert))
    issued = []
    for index, (cert_name, key_name) in enumerate(node_names, start=1):
        key, cert = _issue_node(ca_key, ca_cert, f"swarm node {index}", names, now)
        _write_private(out / key_name, _key_pem(key))
        (out / cert_name).write_bytes(_cert_pem(cert))
        issued.append((out / cert_name, out / key_name))
    return IssuedFiles(out / "ca.pem", out / "ca-key.pem", tuple(issued), names)
