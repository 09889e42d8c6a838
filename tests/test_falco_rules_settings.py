"""The detection settings of the Falco component under Pulumi mocks: hostile source addresses in a ConfigMap of
their own that Falco reloads, allowed identities, and "Full K8s Administrative Access" as a choice.

A new hostile list must reach Falco without a Helm upgrade: the list lives in a ConfigMap outside the release's
values, mounted as a folder of rules files (never a subPath, which the kubelet does not update) that Falco
watches (watch_config_files: Falco 0.44.1 watches its rules folders with inotify and reloads on a change, and
the kubelet swaps a ConfigMap volume's content in by renaming a symlink in that folder).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pulumi_mocks import Recorded, run_falco, run_program, unwrap_secret

from components.cluster import AuditedClusterSettings
from components.detection import FalcoDetectionArgs
from components.errors import ConfigError
from components.falco import HOSTILE_SOURCES_DIR, HOSTILE_SOURCES_FILE, FalcoSettings
from components.falco.rules import hostile_sources_file, source_match
from components.falco.upstream_changes import ADMIN_RULE, RULES_FILE_NAME
from components.lab import FalcoEksLabArgs

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
TOR_EXIT = "185.220.101.34"


def _values(recorded: Recorded, name: str = "falco-audit") -> dict[str, Any]:
    values, _ = unwrap_secret(recorded.one(RELEASE, name).inputs["values"])
    return values


@pytest.fixture(scope="module")
def listed() -> Recorded:
    return run_falco(hostile_source_addresses=(TOR_EXIT, "198.51.100.0/24"))


def test_the_hostile_list_is_a_rules_file_in_a_configmap_of_its_own(listed: Recorded) -> None:
    config_map = listed.one(CONFIG_MAP)
    assert config_map.inputs["metadata"]["name"] == "falco-k8saudit-hostile-sources"
    assert config_map.inputs["metadata"]["namespace"] == "falco"
    expected = hostile_sources_file(source_match((TOR_EXIT, "198.51.100.0/24"), "hostile_source_addresses"))
    assert config_map.inputs["data"] == {HOSTILE_SOURCES_FILE: expected}
    items = yaml.safe_load(config_map.inputs["data"][HOSTILE_SOURCES_FILE])
    assert items[0]["items"] == [TOR_EXIT]


def test_the_audit_pods_mount_it_as_a_watched_rules_folder_loaded_last(listed: Recorded) -> None:
    values = _values(listed)
    assert values["mounts"]["volumes"] == [
        {"name": "hostile-sources", "configMap": {"name": "falco-k8saudit-hostile-sources"}}
    ]
    assert values["mounts"]["volumeMounts"] == [
        {"name": "hostile-sources", "mountPath": HOSTILE_SOURCES_DIR, "readOnly": True}
    ]  # a folder, not a subPath: the kubelet updates it in place
    assert values["falco"]["rules_files"][-1] == HOSTILE_SOURCES_DIR
    assert values["falco"]["watch_config_files"] is True
    # The pods wait for it rather than start without the list.
    assert listed.one(CONFIG_MAP).urn in listed.one(RELEASE, "falco-audit").dependencies
    assert "mounts" not in _values(listed, "falco-syscall")


def test_a_new_hostile_list_changes_the_configmap_and_nothing_else(listed: Recorded) -> None:
    other = run_falco(hostile_source_addresses=("203.0.113.0/24", "2001:db8:beef::/48"))
    before = {(r.type, r.name): r.inputs for r in listed.resources}
    after = {(r.type, r.name): r.inputs for r in other.resources}
    assert before.keys() == after.keys()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {(CONFIG_MAP, "falco-hostile-sources")}  # no Helm upgrade, no pod restart


def test_an_empty_list_still_ships_a_file_that_loads() -> None:
    recorded = run_falco()
    text = recorded.one(CONFIG_MAP).inputs["data"][HOSTILE_SOURCES_FILE]
    assert yaml.safe_load(text.split("\n", 1)[1]) == [
        {"list": "eks_lab_hostile_addresses", "items": [], "override": {"items": "replace"}}
    ]


def test_mounts_of_the_callers_own_are_kept_beside_it() -> None:
    extra = {"name": "ca", "configMap": {"name": "company-ca"}}
    recorded = run_falco(
        audit_values={"mounts": {"volumes": [extra], "volumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/company"}]}}
    )
    mounts = _values(recorded)["mounts"]
    assert [v["name"] for v in mounts["volumes"]] == ["ca", "hostile-sources"]
    assert [m["mountPath"] for m in mounts["volumeMounts"]] == ["/etc/ssl/company", HOSTILE_SOURCES_DIR]


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("hostile_source_addresses", ("tor-exit.example.org",), "not an IP address or CIDR"),
        ("hostile_source_addresses", ("10.0.0.1/8",), "host bits set"),
        ("hostile_source_addresses", ("2001:0:0:1::/64",), "'::' inside"),
        ("hostile_source_addresses", "10.0.0.0/8", "not one string"),
        ("allowed_identities", ("arn:aws:iam::123:nonsense",), "not an IAM role"),
        ("allowed_identities", ("ci bot",), "not a usable user name"),
        ("allowed_identities", ("system:serviceaccount:ci:deployer",), "starts with 'system:'"),
        ("admin_access_alerts", "yes", "true or false"),
    ],
)
def test_bad_settings_are_refused_by_field_before_anything_exists(setting: str, value: Any, says: str) -> None:
    def build() -> None:
        FalcoSettings(**{setting: value})

    with pytest.raises(ConfigError) as refused:
        run_program(build)
    assert refused.value.setting == setting and says in refused.value.message


def _overrides(recorded: Recorded) -> list[dict[str, Any]]:
    return yaml.safe_load(_values(recorded)["customRules"][RULES_FILE_NAME])


def test_full_admin_access_alerts_are_a_choice_off_for_a_company_and_on_in_the_lab() -> None:
    assert FalcoSettings().admin_access_alerts is False
    assert FalcoDetectionArgs(cluster_name="prod").falco.admin_access_alerts is False
    assert FalcoEksLabArgs(cluster=AuditedClusterSettings(cluster_name="lab")).falco.admin_access_alerts is True
    off = run_falco(admin_identities=("arn:aws:iam::123456789012:role/Admin",))
    on = run_falco(admin_identities=("arn:aws:iam::123456789012:role/Admin",), admin_access_alerts=True)
    assert ADMIN_RULE not in {item.get("rule") for item in _overrides(off)}
    assert ADMIN_RULE in {item.get("rule") for item in _overrides(on)}


def test_allowed_identities_reach_the_rules_every_session_of_a_role_included() -> None:
    recorded = run_falco(allowed_identities=("arn:aws:iam::123456789012:role/CICDDeployRole", "jenkins"))
    detection = yaml.safe_load(_values(recorded)["customRules"]["falco-eks-lab-detection.yaml"])
    macro = next(i for i in detection if i.get("macro") == "eks_lab_allowed_identities")
    assert macro["condition"] == (
        '(ka.user.name startswith "arn:aws:sts::123456789012:assumed-role/CICDDeployRole/" or ka.user.name = "jenkins")'
    )
