"""The dashboard's usage panel in headless Chromium: tokens and cost per key, the swarm's cost per million tokens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from swarm.client import SwarmClient
from swarm.coordinator.request_identity import owner_of_key
from tests.conftest import RunningSwarm
from tests.e2e.test_dashboard_browser import browser  # noqa: F401  (the fixture)

MakeSwarm = Callable[..., RunningSwarm]
KEYS = ("panel-key-a", "panel-key-b")
REVIEW_SCREENSHOT = Path("/tmp/dashboard-usage.png")  # a copy for people to look at after a run

pytestmark = pytest.mark.timeout(90)


def test_dashboard_shows_usage_and_cost_per_key(make_swarm: MakeSwarm, browser: Browser) -> None:  # noqa: F811
    swarm = make_swarm(
        workers=0,
        coordinator_args=tuple(arg for key in KEYS for arg in ("--api-key", key)),
        client_options={"api_key": KEYS[0]},
    )
    swarm.add_worker("--watts", "65", "--cost-per-hour", "0.02", name="priced")
    swarm.wait_for_workers(1)
    completion = {}
    for key, requests in zip(KEYS, (3, 1), strict=True):
        with SwarmClient(swarm.address, api_key=key) as client:
            done = [client.generate("The dashboard counts", max_tokens=12, temperature=0.0) for _ in range(requests)]
        completion[f"key-{owner_of_key(key)[:8]}"] = sum(c.finished.completion_tokens for c in done)

    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.context.add_cookies([{"name": "swarm_api_key", "value": KEYS[1], "url": f"http://{swarm.http}/"}])
    page.goto(f"http://{swarm.http}/")
    for tenant, tokens in completion.items():
        row = f'tr[data-tenant="{tenant}"]'
        page.wait_for_selector(row, timeout=20_000)
        cells = page.locator(f"{row} td").all_inner_texts()
        assert cells[4] == str(tokens), cells  # completion tokens
        assert KEYS[0] not in page.content() and KEYS[1] not in page.inner_text("body")  # never a secret
    # Cost appears once a heartbeat brought the worker's busy time: per key, and for the swarm by tokens/s.
    page.wait_for_function(
        "document.querySelector('#tile-cost .tile-value').textContent !== '\u2013'"
        " && !document.querySelector('#usage tbody tr td:last-child').textContent.includes('\u2013')",
        timeout=20_000,
    )
    assert float(page.inner_text("#tile-cost .tile-value")) > 0
    for tenant in completion:
        cells = page.locator(f'tr[data-tenant="{tenant}"] td').all_inner_texts()
        assert float(cells[5]) > 0 and float(cells[7]) > 0, cells  # energy Wh, cost per million
    assert page.is_visible("#tile-tps")
    page.screenshot(path=str(REVIEW_SCREENSHOT), full_page=True)
    assert problems == []
