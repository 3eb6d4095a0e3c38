"""Load balancer examples in deploy/: valid for their tools; HAProxy keeps the OpenAI API up with a coordinator dead."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from swarm.launch.local_swarm import ManagedProcess, free_port, wait_until
from tests.conftest import RunningSwarm

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
NGINX_CONF = DEPLOY / "nginx" / "nginx.conf"
MakeSwarm = Callable[..., RunningSwarm]


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


def test_the_haproxy_example_is_valid() -> None:
    checked = subprocess.run([tool("haproxy"), "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_nginx_example_is_valid() -> None:
    checked = subprocess.run([tool("nginx"), "-t", "-c", str(NGINX_CONF)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def completion(url: str, body: dict[str, object]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{url}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read().decode()


def test_haproxy_keeps_the_openai_api_answering_with_one_coordinator_dead(
    make_swarm: MakeSwarm, tmp_path: Path
) -> None:
    haproxy = tool("haproxy")
    swarm = make_swarm(workers=1)
    dead = f"127.0.0.1:{free_port()}"
    front = free_port()
    servers = iter([dead, swarm.http])
    config = re.sub(r"10\.0\.0\.1\d:8080", lambda _: next(servers), HAPROXY_CFG.read_text())
    config = config.replace("bind :8080", f"bind 127.0.0.1:{front}")
    (tmp_path / "haproxy.cfg").write_text(config)
    proxy = ManagedProcess("haproxy", [haproxy, "-db", "-f", str(tmp_path / "haproxy.cfg")], tmp_path / "haproxy.log")
    proxy.start()
    try:
        url = f"http://127.0.0.1:{front}"

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", front), timeout=1).close()
            except OSError:
                return False
            return True

        # Requests start at once: the /healthz checks, or the retry of a refused connection, keep them off the dead one.
        wait_until(listening, 15, "haproxy listening", interval_s=0.02)
        body = {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
        answers = [completion(url, body) for _ in range(6)]
        assert [status for status, _ in answers] == [200] * 6
        texts = {json.loads(text)["choices"][0]["text"] for _, text in answers}
        assert len(texts) == 1  # greedy: the same completion whichever way it went
        status, streamed = completion(url, {**body, "stream": True})
        assert status == 200
        assert streamed.rstrip().endswith("data: [DONE]")
    finally:
        proxy.stop()
