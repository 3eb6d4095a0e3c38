"""`--max-cpu`/`--max-memory` as pure rules: parsing, the thread cap, systemd's settings, and who keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.worker.owner_limits import (
    KEPT_BY_ENV,
    NO_LIMITS,
    KeptBy,
    OwnerLimits,
    kept_by,
    parse_cpu_share,
    parse_memory_size,
    scope_command,
)


def test_sizes_count_in_1024s_like_systemd_and_bad_values_name_the_flag() -> None:
    assert parse_memory_size("4G") == 4 * 1024**3
    assert parse_memory_size("512M") == 512 * 1024**2
    assert parse_memory_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_memory_size("2048") == 2048
    for bad in ("lots", "0G", "-1G", "4X"):
        with pytest.raises(ValueError, match="--max-memory"):
            parse_memory_size(bad)
    assert parse_cpu_share("50%") == 0.5
    assert parse_cpu_share("100") == 1.0
    for bad in ("0%", "150%", "half"):
        with pytest.raises(ValueError, match="--max-cpu"):
            parse_cpu_share(bad)


def test_threads_stay_within_the_share_of_whole_cores_and_at_least_one() -> None:
    assert OwnerLimits(0.5).threads(8, cores=8) == 4
    assert OwnerLimits(0.5).threads(2, cores=8) == 2  # fewer wanted than allowed
    assert OwnerLimits(0.3).threads(8, cores=2) == 1  # 0.6 of a core still runs one thread
    assert OwnerLimits(0.75).threads(8, cores=4) == 3
    assert NO_LIMITS.threads(16, cores=4) == 16  # no cap: the owner may oversubscribe


def test_systemd_settings_give_the_cpu_quota_per_core_and_a_soft_memory_line_below_the_hard_one() -> None:
    assert OwnerLimits(0.5, 4 * 1024**3).systemd_properties(cores=8) == [
        "CPUQuota=400%",
        f"MemoryHigh={int(4 * 1024**3 * 0.9)}",
        f"MemoryMax={4 * 1024**3}",
    ]
    assert NO_LIMITS.systemd_properties(cores=8) == []
    assert OwnerLimits(0.5).describe(cores=8) == "50% of 8 cores"
    assert scope_command(OwnerLimits(0.25), 4, ["python", "-m", "swarm", "join"]) == [
        "systemd-run", "--user", "--scope", "--quiet", "-p", "CPUQuota=100%", "--", "python", "-m", "swarm", "join"
    ]  # fmt: skip


def test_systemd_keeps_the_caps_where_it_runs_and_the_worker_keeps_them_itself_elsewhere() -> None:
    capped = OwnerLimits(0.5)
    assert kept_by(NO_LIMITS, {}, user_systemd=True) is KeptBy.NOTHING
    assert kept_by(capped, {}, user_systemd=True) is KeptBy.SCOPE
    assert kept_by(capped, {}, user_systemd=False) is KeptBy.ITSELF
    assert kept_by(capped, {KEPT_BY_ENV: "unit"}, user_systemd=True) is KeptBy.UNIT  # the unit's own cgroup
    assert kept_by(capped, {KEPT_BY_ENV: "scope"}, user_systemd=True) is KeptBy.SCOPE  # ran again: no loop
    assert kept_by(capped, {KEPT_BY_ENV: "itself"}, user_systemd=True) is KeptBy.ITSELF


def test_a_model_file_larger_than_the_memory_cap_is_refused_naming_both_sizes(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"\0" * 4096)
    OwnerLimits(memory_bytes=4096).check_model_fits(model)
    NO_LIMITS.check_model_fits(model)
    with pytest.raises(ValueError, match=r"m\.gguf .* larger than --max-memory"):
        OwnerLimits(memory_bytes=4095).check_model_fits(model)
