"""The default worker count: CPU affinity capped by the cgroup v2 / v1 CPU quota, read from
fixture cgroup trees in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interpserve import cpus
from interpserve.config import Config

V2_SERVICE = "0::/system.slice/app.service\n"
V1_DOCKER = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# Parsing


@pytest.mark.parametrize(
    ("text", "quota"),
    [
        ("200000 100000\n", 2.0),
        ("150000 100000", 1.5),
        ("50000 100000", 0.5),
        ("max 100000\n", None),
        ("", None),
        ("garbage", None),
        ("100000 0", None),
    ],
)
def test_parse_cpu_max(text: str, quota: float | None) -> None:
    assert cpus.parse_cpu_max(text) == quota


@pytest.mark.parametrize(
    ("quota", "period", "cpus_"),
    [("200000\n", "100000\n", 2.0), ("-1\n", "100000\n", None), ("x", "100000", None)],
)
def test_parse_cfs(quota: str, period: str, cpus_: float | None) -> None:
    assert cpus.parse_cfs(quota, period) == cpus_


def test_cgroup_paths() -> None:
    assert cpus.cgroup_paths(V1_DOCKER) == {
        "memory": "/docker/abc",
        "cpu": "/docker/abc",
        "cpuacct": "/docker/abc",
        "": "/",
    }


# Reading cgroup trees


def test_v2_limited(tmp_path: Path) -> None:
    root = write(tmp_path, {"cgroup.controllers": "cpu\n", "cpu.max": "300000 100000\n"})
    assert cpus.cpu_quota(root, "0::/\n") == 3.0


def test_v2_unlimited(tmp_path: Path) -> None:
    root = write(tmp_path, {"cgroup.controllers": "cpu\n", "cpu.max": "max 100000\n"})
    assert cpus.cpu_quota(root, "0::/\n") is None


def test_v2_limit_on_a_parent_cgroup_binds(tmp_path: Path) -> None:
    """A systemd service under a slice with CPUQuota=: the tightest quota on the way up counts."""
    root = write(
        tmp_path,
        {
            "cgroup.controllers": "cpu\n",
            "system.slice/cpu.max": "150000 100000\n",
            "system.slice/app.service/cpu.max": "max 100000\n",
        },
    )
    assert cpus.cpu_quota(root, V2_SERVICE) == 1.5


def test_v2_path_not_visible_reads_the_mount(tmp_path: Path) -> None:
    """In a container the host-side path is not under the container's cgroup mount."""
    root = write(tmp_path, {"cgroup.controllers": "cpu\n", "cpu.max": "100000 100000\n"})
    assert cpus.cpu_quota(root, V2_SERVICE) == 1.0


def test_v1_limited(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {"cpu,cpuacct/cpu.cfs_quota_us": "250000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
    )
    assert cpus.cpu_quota(root, V1_DOCKER) == 2.5


def test_v1_unlimited(tmp_path: Path) -> None:
    root = write(tmp_path, {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cpus.cpu_quota(root, "4:cpu:/\n") is None


def test_v1_limit_in_the_process_cgroup(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "cpu/cpu.cfs_quota_us": "-1\n",
            "cpu/cpu.cfs_period_us": "100000\n",
            "cpu/docker/abc/cpu.cfs_quota_us": "100000\n",
            "cpu/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cpus.cpu_quota(root, "4:cpu:/docker/abc\n") == 1.0


def test_missing_files(tmp_path: Path) -> None:
    assert cpus.cpu_quota(tmp_path, "") is None
    assert cpus.cpu_quota(tmp_path / "does-not-exist", V2_SERVICE) is None
    write(tmp_path, {"cpu/cpu.cfs_quota_us": "100000\n"})  # no period file
    assert cpus.cpu_quota(tmp_path, "4:cpu:/\n") is None


# The decision


@pytest.mark.parametrize(
    ("affinity", "quota", "total", "workers", "reason"),
    [
        (64, 2.0, 64, 2, "CPU quota 2.0 of 64 CPUs"),
        (64, 1.5, 64, 2, "CPU quota 1.5 of 64 CPUs"),  # rounded up
        (64, 0.25, 64, 1, "CPU quota 0.25 of 64 CPUs"),  # at least one
        (4, 8.0, 64, 4, "CPU affinity 4 of 64 CPUs"),  # affinity is tighter
        (8, None, 8, 8, "8 CPUs"),
        (0, None, 8, 1, "CPU affinity 1 of 8 CPUs"),
    ],
)
def test_budget(affinity: int, quota: float | None, total: int, workers: int, reason: str) -> None:
    assert cpus.budget(affinity, quota, total) == cpus.CPUBudget(workers, reason)


def test_config_default_follows_this_machine() -> None:
    budget = cpus.default_workers()
    assert 1 <= budget.workers <= (os.process_cpu_count() or 1)
    assert Config().worker_count == budget.workers
    assert Config(workers=7).worker_count == 7
