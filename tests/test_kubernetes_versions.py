"""Which Kubernetes versions a new lab cluster may use: EKS's own answer first, the calendar without it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from components.cluster import DEFAULT_KUBERNETES_VERSION
from components.cluster.kubernetes_versions import (
    CALENDAR_RECORDED_ON,
    EKS_CALENDAR,
    OfferedVersion,
    check_calendar,
    check_offered_by_eks,
)
from components.errors import ConfigError

OFFERED = [
    OfferedVersion("1.34", "STANDARD_SUPPORT", "2026-12-02T00:00:00Z"),
    OfferedVersion("1.36", "STANDARD_SUPPORT", "2027-08-02T00:00:00Z"),
    OfferedVersion("1.35", "STANDARD_SUPPORT", "2027-03-27T00:00:00Z"),
    OfferedVersion("1.33", "EXTENDED_SUPPORT", "2026-07-29T00:00:00Z"),
    OfferedVersion("1.30", "UNSUPPORTED", "2025-07-23T00:00:00Z"),
]


def refused(check, *args) -> str:
    with pytest.raises(ConfigError) as caught:
        check(*args)
    assert caught.value.setting == "kubernetes_version"
    return caught.value.message


def test_version_eks_lists_in_standard_support_is_accepted():
    for version in ("1.34", "1.35", "1.36"):
        check_offered_by_eks(version, OFFERED)


def test_version_in_extended_support_is_refused_with_the_date_and_the_choices_newest_first():
    message = refused(check_offered_by_eks, "1.33", OFFERED)
    assert "left EKS standard support on 2026-07-29" in message
    assert "extended support off" in message
    assert message.endswith("use one in standard support: 1.36, 1.35, 1.34")


def test_version_eks_no_longer_supports_is_refused():
    assert "UNSUPPORTED" in refused(check_offered_by_eks, "1.30", OFFERED)


def test_version_eks_does_not_list_is_refused():
    message = refused(check_offered_by_eks, "1.40", OFFERED)
    assert "EKS does not offer Kubernetes 1.40" in message


def test_calendar_refuses_from_the_day_standard_support_ends():
    end = EKS_CALENDAR["1.33"].end_of_standard
    check_calendar("1.33", end - timedelta(days=1))
    message = refused(check_calendar, "1.33", end)
    assert f"left EKS standard support on {end.isoformat()}" in message
    # The choices are the versions in standard support that day.
    assert message.endswith("use one in standard support: 1.36, 1.35, 1.34")


def test_calendar_leaves_versions_it_does_not_know_to_eks():
    check_calendar("1.40", date(2030, 1, 1))


def test_calendar_windows_are_consistent():
    for version, window in EKS_CALENDAR.items():
        assert window.released < window.end_of_standard < window.end_of_extended, version
        # 14 months of standard support, 12 more of extended (EKS user guide), give or take days.
        assert 415 <= (window.end_of_standard - window.released).days <= 435, version
        assert 360 <= (window.end_of_extended - window.end_of_standard).days <= 370, version


def test_default_version_was_in_standard_support_when_the_calendar_was_recorded():
    window = EKS_CALENDAR[DEFAULT_KUBERNETES_VERSION]
    assert window.released <= CALENDAR_RECORDED_ON < window.end_of_standard
