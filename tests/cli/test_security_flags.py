"""Bad security flags stop a command with a message naming the flag, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.cli.main import main

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["coordinator", "--tls-ca", "/nonexistent/ca.pem"], "--tls-ca: no such file"),
        (["coordinator", "--tls-cert", "/nonexistent/node.pem"], "--tls-cert and --tls-key go together"),
        (["coordinator", "--api-keys-file", "/nonexistent/keys"], "--api-keys-file: cannot read"),
        (["coordinator", "--api-key", "has space"], "API key #1 must be printable ASCII"),
        (["join", "127.0.0.1:1", "--model", "x.gguf", "--tls-key", "/nonexistent/k.pem"], "go together"),
    ],
)
def test_servers_name_the_bad_flag(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_server_needs_its_own_certificate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read yet")
    assert main(["coordinator", "--tls-ca", str(ca)]) == 2
    assert "a TLS server needs --tls-cert and --tls-key" in capsys.readouterr().err


def test_clients_name_the_bad_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["status", "--coordinator", "127.0.0.1:1", "--tls-ca", "/nonexistent/ca.pem"])
    assert exited.value.code == 2
    assert "swarm status: error: --tls-ca: no such file" in capsys.readouterr().err
