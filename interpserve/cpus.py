"""How many workers to start by default: one per CPU this process may actually use.

The CPU count a container sees is the host's; its share of them is a cgroup CPU quota (Docker's
`--cpus`, Kubernetes' `limits.cpu`, systemd's `CPUQuota=`). A pool sized from the host's count
runs more workers than the quota can feed: they are throttled in turns and latency suffers. So
the default is the CPUs in this process's affinity mask, capped by the quota rounded up.

The readers take the cgroup file system's root (and /proc/self/cgroup's text) as parameters, so
tests point them at fixture trees.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# Where a cgroup v1 hierarchy mounts the cpu controller (alone, or joined with cpuacct).
_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


@dataclass(frozen=True)
class CPUBudget:
    workers: int
    reason: str  # for the startup log: why this many


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 `cpu.max`: "QUOTA PERIOD" in microseconds, or "max PERIOD" for no limit."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def parse_cfs(quota: str, period: str) -> float | None:
    """cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; a quota of -1 means no limit."""
    return _ratio(quota.strip(), period.strip())


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_paths(proc_self_cgroup: str) -> dict[str, str]:
    """This process's cgroup per controller, from /proc/self/cgroup ("ID:CONTROLLERS:PATH" lines);
    the cgroup v2 (unified) path is under the key ""."""
    paths = {}
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    return paths


def _cgroup_dirs(mount: Path, path: str) -> list[Path]:
    """The cgroup's directory and its parents up to the mount, deepest first. A limit set on a
    parent (a systemd slice, a pod) binds too. Inside a container the mount is usually the
    container's own cgroup, and the host-side path is not visible: then just the mount."""
    leaf = mount / path.strip("/")
    if not leaf.is_dir():
        return [mount]
    return [leaf, *(parent for parent in leaf.parents if parent.is_relative_to(mount))]


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cpu_quota(root: Path = CGROUP_ROOT, proc_self_cgroup: str = "") -> float | None:
    """The tightest CPU quota on this process's cgroup and its parents, in CPUs (1.5 = one and a
    half CPUs' worth of time per period); None if there is none, or no cgroup to read."""
    paths = cgroup_paths(proc_self_cgroup)
    quotas = []
    for directory in _cgroup_dirs(root, paths.get("", "/")):
        if (text := _read(directory / "cpu.max")) is not None:
            quotas.append(parse_cpu_max(text))
    if not (root / "cgroup.controllers").exists():  # not a pure v2 host: v1, or hybrid
        for name in _V1_CPU_MOUNTS:
            mount = root / name
            if not mount.is_dir():
                continue
            for directory in _cgroup_dirs(mount, paths.get("cpu", "/")):
                quota = _read(directory / "cpu.cfs_quota_us")
                period = _read(directory / "cpu.cfs_period_us")
                if quota is not None and period is not None:
                    quotas.append(parse_cfs(quota, period))
            break
    return min((quota for quota in quotas if quota is not None), default=None)


def budget(affinity: int, quota: float | None, total: int) -> CPUBudget:
    """Workers for `affinity` usable CPUs (of `total` on the machine) under `quota` CPUs."""
    affinity = max(affinity, 1)
    if quota is not None and math.ceil(quota) < affinity:
        workers = max(1, math.ceil(quota))
        return CPUBudget(workers, f"CPU quota {round(quota, 2)} of {affinity} CPUs")
    if affinity < total:
        return CPUBudget(affinity, f"CPU affinity {affinity} of {total} CPUs")
    return CPUBudget(affinity, f"{affinity} CPUs")


@functools.cache
def default_workers() -> CPUBudget:
    """The default --workers for this process (read once: the limits do not change under it)."""
    affinity = os.process_cpu_count() or 1
    proc_self_cgroup = _read(PROC_SELF_CGROUP) or ""
    return budget(affinity, cpu_quota(CGROUP_ROOT, proc_self_cgroup), os.cpu_count() or affinity)


# A serving process's front end is one event loop on one core; it keeps this many CPUs of
# workers busy with requests that do real work, and falls behind only on the lightest ones.
CPUS_PER_PROCESS = 8


def default_processes() -> int:
    """The default --processes: one serving process per CPUS_PER_PROCESS usable CPUs (1 on
    small machines)."""
    return max(1, default_workers().workers // CPUS_PER_PROCESS)
