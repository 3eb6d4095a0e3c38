"""The dashboard in headless Chromium against a real swarm: live worker states, no console errors."""

from __future__ import annotations

import os
import shutil
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from swarm.client import BatchClient
from swarm.shared.batch_types import BatchLine
from swarm.shared.types import RawRequest
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]
REVIEW_SCREENSHOT = Path("/tmp/dashboard.png")  # a copy for people to look at after a run

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: run scripts/install.sh (Debian package chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


def test_page_and_assets_load_without_a_key(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    for path, kind in (("/", "text/html"), ("/static/dashboard.js", "javascript"), ("/static/dashboard.css", "css")):
        with urllib.request.urlopen(f"http://{swarm.http}{path}", timeout=5) as response:
            assert kind in response.headers["Content-Type"], path


def test_dashboard_shows_workers_live_and_a_killed_one_down(
    make_swarm: MakeSwarm, browser: Browser, tmp_path: Path
) -> None:
    swarm = make_swarm(workers=0)
    alpha = swarm.add_worker("--worker-id", "alpha", name="alpha")
    beta = swarm.add_worker("--worker-id", "beta", name="beta")
    swarm.wait_for_workers(2)
    assert alpha.alive
    with swarm.client() as client:
        for n in (8, 16, 24):
            client.generate("The dashboard shows", max_tokens=n, temperature=0.0)
    with BatchClient(swarm.address) as batches:
        job = batches.submit([BatchLine(RawRequest(prompt=f"Line {i}", max_tokens=4)) for i in range(3)])

    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(f"http://{swarm.http}/")

    for worker_id in ("alpha", "beta"):
        page.wait_for_selector(f'tr[data-worker="{worker_id}"].up', timeout=15_000)
    page.wait_for_function("document.getElementById('connection').textContent === 'live'", timeout=10_000)
    assert "2 / 2" in page.inner_text("#tile-workers")
    page.wait_for_selector(f'tr[data-job="{job.job_id}"]', timeout=10_000)
    page.wait_for_function(
        f"document.querySelector('tr[data-job=\"{job.job_id}\"]').textContent.includes('3 / 3')", timeout=15_000
    )

    beta.kill()  # SIGKILL: no goodbye, the heartbeat just stops
    page.wait_for_selector('tr[data-worker="beta"].down', timeout=20_000)
    page.wait_for_selector(".problem-error", timeout=5_000)
    assert "worker beta is down" in page.inner_text("#problems")
    assert page.inner_text('tr[data-worker="alpha"] .badge') == "up"
    assert "1 down" in page.inner_text("#tile-workers")
    # A few more snapshots drawn while it is down (its heartbeat ages on screen), for the console check below.
    page.wait_for_function(
        "parseFloat(document.querySelector('tr[data-worker=\"beta\"] td:last-child').textContent) >= 6",
        timeout=15_000,
    )
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    page.screenshot(path=str(REVIEW_SCREENSHOT), full_page=True)
    assert problems == []


def test_dashboard_asks_for_the_api_key_and_keeps_it_in_a_cookie(make_swarm: MakeSwarm, browser: Browser) -> None:
    swarm = make_swarm(workers=1, coordinator_args=("--api-key", "sesame"), client_options={"api_key": "sesame"})
    (worker_id,) = swarm.up_workers()
    page = browser.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    page.goto(f"http://{swarm.http}/")  # the page itself needs no key; its data does

    page.wait_for_selector("#key-dialog[open]", timeout=10_000)
    assert page.inner_text("#connection") == "API key needed"
    page.fill("#key-input", "sesame")
    page.click("#key-dialog button[type=submit]")
    page.wait_for_selector(f'tr[data-worker="{worker_id}"].up', timeout=15_000)
    assert page.inner_text("#connection") == "live"
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "swarm_api_key"]
    assert cookie["value"] == "sesame" and cookie["sameSite"] == "Strict"
    assert page_errors == []


def test_a_stuck_coordinator_shows_as_stale_and_recovers(make_swarm: MakeSwarm, browser: Browser) -> None:
    swarm = make_swarm(workers=0)
    page = browser.new_page()
    page.goto(f"http://{swarm.http}/")
    live = "document.getElementById('connection').textContent === 'live'"
    page.wait_for_function(live, timeout=10_000)
    os.kill(swarm.coordinator.pid, signal.SIGSTOP)  # frozen: the stream stays open, nothing arrives
    try:
        page.wait_for_function("document.getElementById('connection').textContent.startsWith('stale')", timeout=15_000)
    finally:
        os.kill(swarm.coordinator.pid, signal.SIGCONT)
    page.wait_for_function(live, timeout=10_000)
