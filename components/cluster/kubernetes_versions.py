"""Which Kubernetes versions EKS offers a new lab cluster, and refusing the ones it does not.

The lab creates its cluster with extended support turned off (upgrade policy STANDARD: extended support
costs six times as much per hour), and EKS does not let a cluster that is already in extended support turn
it off. So a version is usable for a new cluster only while it is in *standard* support.

Two sources, the live one first:
- EKS itself (DescribeClusterVersions, through ``aws.eks.get_cluster_versions``), asked by the stack
  program at preview time, before anything is created;
- the calendar below, used when that call is not possible (no permission, no network). Its dates do not
  move once AWS publishes them; a version newer than the calendar is left to EKS to judge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from ..errors import ConfigError

# Sources (read 2026-12-01): the EKS user guide's release calendar ("Understand the Kubernetes version
# lifecycle on EKS", docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html) as mirrored by
# endoflife.date/amazon-eks (release and end dates) and aws-samples "sample-apex-skills" cluster-lifecycle.md
# (end dates, verified 2026-04-24) for 1.29-1.35. 1.36: EKS release 2026-06-02, standard support through
# 2027-08-02 (devopsdreams.blogspot.com, 2026-08-16); its extended end is the usual 12 months later.
# Standard support lasts 14 months from the EKS release, extended support 12 more (same user guide page).
CALENDAR_RECORDED_ON = date(2026, 12, 1)


@dataclass(frozen=True)
class SupportWindow:
    """When EKS released a minor version and when its standard and extended support end."""

    released: date
    end_of_standard: date
    end_of_extended: date


EKS_CALENDAR: Mapping[str, SupportWindow] = {
    "1.29": SupportWindow(date(2024, 1, 23), date(2025, 3, 23), date(2026, 3, 23)),
    "1.30": SupportWindow(date(2024, 5, 23), date(2025, 7, 23), date(2026, 7, 23)),
    "1.31": SupportWindow(date(2024, 9, 26), date(2025, 11, 26), date(2026, 11, 26)),
    "1.32": SupportWindow(date(2025, 1, 25), date(2026, 3, 23), date(2027, 3, 23)),
    "1.33": SupportWindow(date(2025, 5, 28), date(2026, 7, 29), date(2027, 7, 29)),
    "1.34": SupportWindow(date(2025, 10, 6), date(2026, 12, 2), date(2027, 12, 2)),
    "1.35": SupportWindow(date(2026, 1, 28), date(2027, 3, 27), date(2028, 3, 27)),
    "1.36": SupportWindow(date(2026, 6, 2), date(2027, 8, 2), date(2028, 8, 2)),
}

STANDARD_SUPPORT = "STANDARD_SUPPORT"
EXTENDED_SUPPORT = "EXTENDED_SUPPORT"


@dataclass(frozen=True)
class OfferedVersion:
    """One entry of EKS's DescribeClusterVersions answer."""

    version: str
    status: str
    """STANDARD_SUPPORT, EXTENDED_SUPPORT or UNSUPPORTED."""
    end_of_standard_support: str = ""
    """As EKS wrote it (an RFC 3339 timestamp); only shown in messages."""


def _minor(version: str) -> int:
    match = re.match(r"^1\.(\d+)$", version)
    return int(match[1]) if match else -1


def _newest_first(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=_minor, reverse=True)


def check_offered_by_eks(version: str, offered: Iterable[OfferedVersion], setting: str = "kubernetes_version") -> None:
    """Refuse `version` unless EKS's own list says it is in standard support."""
    offered = list(offered)
    usable = _newest_first(v.version for v in offered if v.status == STANDARD_SUPPORT)
    choose = f"use one in standard support: {', '.join(usable)}" if usable else "EKS listed none in standard support"
    entry = next((v for v in offered if v.version == version), None)
    if entry is None:
        raise ConfigError(setting, f"EKS does not offer Kubernetes {version} in this region; {choose}")
    if entry.status == EXTENDED_SUPPORT:
        ended = f" on {entry.end_of_standard_support[:10]}" if entry.end_of_standard_support else ""
        raise ConfigError(
            setting,
            f"Kubernetes {version} left EKS standard support{ended}; the lab keeps extended support off "
            f"(6x the hourly price), which EKS allows only in standard support; {choose}",
        )
    if entry.status != STANDARD_SUPPORT:
        raise ConfigError(setting, f"EKS no longer supports Kubernetes {version} ({entry.status}); {choose}")


def check_calendar(version: str, today: date, setting: str = "kubernetes_version") -> None:
    """Refuse `version` if the calendar says its standard support ended by `today`.

    A version the calendar does not know (newer than it) passes: EKS decides at deploy time."""
    window = EKS_CALENDAR.get(version)
    if window is None or today < window.end_of_standard:
        return
    usable = _newest_first(v for v, w in EKS_CALENDAR.items() if w.released <= today < w.end_of_standard)
    choose = f"use one in standard support: {', '.join(usable)}" if usable else "use a newer version"
    raise ConfigError(
        setting,
        f"Kubernetes {version} left EKS standard support on {window.end_of_standard.isoformat()}; the lab keeps "
        f"extended support off (6x the hourly price), which EKS allows only in standard support; {choose}",
    )
