"""`swarm certs init` from the command line: files, what it prints, and refusing to overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.cli.main import main

pytestmark = pytest.mark.timeout(30)


def test_init_creates_the_files_and_says_where_they_go(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "certs"
    assert main(["certs", "init", "--out", str(out), "--hosts", "coord.lan,192.168.1.5", "--nodes", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "ca-key.pem",
        "ca.pem",
        "node-1-key.pem",
        "node-1.pem",
        "node-2-key.pem",
        "node-2.pem",
    ]
    printed = capsys.readouterr().out
    assert "coord.lan, 192.168.1.5, localhost, 127.0.0.1" in printed
    assert f"--tls-ca {out / 'ca.pem'}" in printed


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "init", "--out", str(tmp_path)]) == 0
    ca = (tmp_path / "ca.pem").read_bytes()
    assert main(["certs", "init", "--out", str(tmp_path)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert (tmp_path / "ca.pem").read_bytes() == ca
    assert main(["certs", "init", "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "ca.pem").read_bytes() != ca


def test_init_names_a_bad_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "init", "--out", str(tmp_path), "--hosts", "not a host"]) == 2
    assert "--hosts" in capsys.readouterr().err
