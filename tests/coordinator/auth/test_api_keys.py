"""API keys: reading them from flags, a file and the environment, and checking a presented key."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.coordinator.auth.api_keys import ApiKeyCheck, check_api_key_format, collect_api_keys, parse_api_keys

pytestmark = pytest.mark.timeout(10)


def test_keys_file_skips_blank_lines_and_comments() -> None:
    assert parse_api_keys("# team keys\nalpha\n\n  beta  # ops\n#gamma\n") == ["alpha", "beta"]


def test_flags_file_and_environment_are_merged_without_repeats(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("beta\ngamma\n")
    assert collect_api_keys(["alpha", "beta"], str(keys_file), "gamma, delta") == ("alpha", "beta", "gamma", "delta")


def test_unreadable_keys_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--api-keys-file"):
        collect_api_keys([], str(tmp_path / "missing"), None)


def test_a_key_that_cannot_travel_in_a_header_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="API key #2") as refused:
        check_api_key_format(["fine", "has space"])
    assert "has space" not in str(refused.value)


def test_only_configured_keys_pass() -> None:
    check = ApiKeyCheck(["alpha", "beta"])
    assert check.required
    assert check.allows("beta")
    assert not check.allows("gamma")
    assert not check.allows("")
    assert not check.allows(None)
    assert check.allows_bearer("Bearer alpha")
    assert check.allows_bearer("bearer alpha")
    assert not check.allows_bearer("Basic alpha")
    assert not check.allows_bearer("alpha")


def test_without_keys_everything_passes() -> None:
    check = ApiKeyCheck([])
    assert not check.required
    assert check.allows(None)
