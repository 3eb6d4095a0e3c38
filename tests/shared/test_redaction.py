"""Passwords in Redis URLs never reach a log line or an error message."""

from __future__ import annotations

import pytest

from swarm.shared.redaction import redact_url, scrub

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (
            "rediss://app:s3cret@cache.lan:6380/2?ssl_cert_reqs=required",
            "rediss://app:***@cache.lan:6380/2?ssl_cert_reqs=required",
        ),
        ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock?db=0&password=***"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (
            "redis+sentinel://:s3cret@s1.lan:26379,s2.lan:26379/swarm/0?sentinel_password=s3ntinel",
            "redis+sentinel://:***@s1.lan:26379,s2.lan:26379/swarm/0?sentinel_password=***",
        ),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_scrub_hides_raw_and_percent_decoded_passwords() -> None:
    url = "redis://:p%40ss@127.0.0.1:6379/0"
    assert scrub("auth p@ss failed for redis://:p%40ss@127.0.0.1", url) == "auth *** failed for redis://:***@127.0.0.1"
