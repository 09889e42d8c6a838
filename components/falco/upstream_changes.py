"""The lab's changes to the upstream k8saudit rules, and the identities they (and the lab's own rules) know.

The lab's Falco loads three kinds of rules, in this order: upstream's k8s_audit_rules.yaml (falcosecurity/
plugins, pinned in components/falco/k8saudit_upstream.py), the lab's own rules (components/falco/rules, a file that
stands alone), and this module's file of changes to upstream (rules_files puts both lab files in the chart's
``customRules``). Upstream knows the user names of kubeadm, kops or minikube clusters. On EKS the API server
writes the caller's IAM identity as the user name, and for a role it carries the session name:
``arn:aws:sts::<account>:assumed-role/<role>/<session>``. So:

- "Full K8s Administrative Access" ships switched off (``not allowed_full_admin_users`` with an
  always-true macro) and only matches the names in ``full_admin_k8s_users``. With ``admin_access_alerts``
  (the workshop's choice) the lab turns it on and adds its admin identities.
- "Disallowed K8s User" fires for every user outside ``allowed_k8s_users`` and
  ``eks_allowed_k8s_users`` that does not start with ``system:`` (``non_system_user``: nodes and
  service accounts are already out). On EKS that is every IAM identity, the lab's own admins
  included, and the upstream EKS list names only 11 of EKS's own ``eks:`` components. The lab
  also spares its admin identities, the identities the operator allows (``allowed_identities``: CI/CD
  roles, developers) and EKS's own ``eks:`` users, recognised as not IAM-authenticated (rules.common).
  Any other IAM identity, e.g. a second role someone granted access, is still reported.
- Upstream rules the lab replaces with better ones (UPSTREAM_CHANGES says why, rule by rule) are switched
  off; those it keeps that fire on EKS's own machinery get an exemption, and every kept rule of Warning or
  above its MITRE ATT&CK and GuardDuty tags.

The session name changes with every login (an SSO user's e-mail, ``botocore-session-<n>``, a CI
job id), so matching the exact ARN would miss the next login of the same admin role. A role is
therefore matched by the prefix ``arn:<partition>:sts::<account>:assumed-role/<role>/``: every
session of that role, and nothing of another role (the trailing ``/`` stops ``Admin`` from
matching ``AdminReadOnly``). IAM users and plain Kubernetes user names are matched exactly.

The identities end up inside double-quoted strings of a Falco condition rather than in a Falco
list, so characters that are legal in IAM names (``,`` ``=`` ``@`` ``+``) cannot split an item.
Every upstream name the generated file overrides or references is checked against the pinned
upstream names (k8saudit_upstream), so a renamed macro stops `pulumi preview`, not the Falco pod.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from ..errors import ConfigError
from . import k8saudit_upstream as upstream
from .rules import ALLOWED_USERS_NAME, DETECTION_FILE_NAME, detection_rules, guardduty
from .rules import common as rules_common
from .rules import document as rules_document
from .rules import workloads as rules_workloads

RULES_FILE_NAME = "falco-eks-lab-rules.yaml"
"""Key under the chart's ``customRules``; the chart mounts it as /etc/falco/rules.d/<key>."""

ADMIN_RULE = "Full K8s Administrative Access"
DISALLOWED_USER_RULE = "Disallowed K8s User"
DISABLING_MACRO = "allowed_full_admin_users"
IDENTITY_MACRO = rules_common.ADMIN_IDENTITIES_NAME
ALLOWED_USERS_MACRO = ALLOWED_USERS_NAME

_PARTITION = r"aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b"
_IAM_NAME = r"[\w+=,.@-]{1,128}"
_ROLE_ARN = re.compile(rf"^arn:({_PARTITION}):iam::(\d{{12}}):role/(?:[\w+=,.@-]+/)*({_IAM_NAME})$", re.ASCII)
_SESSION = r"[\w+=,.@-]{2,64}"
_ASSUMED_ROLE_ARN = re.compile(
    rf"^arn:({_PARTITION}):sts::(\d{{12}}):assumed-role/({_IAM_NAME})/({_SESSION})$", re.ASCII
)
_USER_ARN = re.compile(rf"^arn:({_PARTITION}):iam::\d{{12}}:user/(?:[\w+=,.@-]+/)*{_IAM_NAME}$", re.ASCII)
# A Kubernetes user name as an access entry or aws-auth mapping may set it; no quotes, backslashes or spaces.
_PLAIN_NAME = re.compile(r"^[^\s\"\\]{1,256}$")


@dataclass(frozen=True)
class AdminMatcher:
    """How one admin identity is recognised in ``ka.user.name``."""

    value: str
    prefix: bool
    """True: every user name starting with ``value`` (all sessions of a role)."""

    def condition(self) -> str:
        operator = "startswith" if self.prefix else "="
        return f'ka.user.name {operator} "{self.value}"'


def admin_matcher(identity: str, setting: str = "admin_identities") -> AdminMatcher:
    """Translate an identity as an operator knows it into what EKS writes as the user name.

    Accepted: an IAM role ARN, an assumed-role ARN (as ``aws sts get-caller-identity`` prints it;
    its session is dropped), an IAM user ARN, or a plain Kubernetes user name.
    """
    role = _ROLE_ARN.match(identity)
    if role:
        partition, account, name = role.groups()
        return AdminMatcher(f"arn:{partition}:sts::{account}:assumed-role/{name}/", prefix=True)
    assumed = _ASSUMED_ROLE_ARN.match(identity)
    if assumed:
        partition, account, name, _session = assumed.groups()
        return AdminMatcher(f"arn:{partition}:sts::{account}:assumed-role/{name}/", prefix=True)
    if _USER_ARN.match(identity):
        return AdminMatcher(identity, prefix=False)
    if identity.startswith("arn:"):
        raise ConfigError(
            setting,
            f"{identity!r} is not an IAM role, assumed-role or user ARN "
            "(expected arn:aws:iam::<account>:role/<name>, arn:aws:sts::<account>:assumed-role/<role>/<session> "
            "or arn:aws:iam::<account>:user/<name>)",
        )
    if not _PLAIN_NAME.match(identity):
        raise ConfigError(
            setting, f"{identity!r} is not a usable user name (empty, or holds spaces, quotes or backslashes)"
        )
    if identity.startswith("system:"):
        raise ConfigError(
            setting, f"{identity!r} starts with 'system:', which the rule always ignores (non_system_user)"
        )
    return AdminMatcher(identity, prefix=False)


def admin_matchers(identities: Iterable[str], setting: str = "admin_identities") -> tuple[AdminMatcher, ...]:
    """Matchers for every identity, duplicates (e.g. two sessions of one role) removed, order kept."""
    seen: dict[AdminMatcher, None] = {}
    for identity in identities:
        seen.setdefault(admin_matcher(identity, setting), None)
    return tuple(seen)


@dataclass(frozen=True)
class UpstreamChange:
    """What the lab does to one upstream rule it keeps or switches off, and why."""

    rule: str
    why: str
    append: str = ""
    """Condition text appended (after a space), e.g. ``and not eks_lab_own_component``."""
    tags: tuple[str, ...] = ()
    """Tags added: the MITRE ATT&CK techniques and GuardDuty finding types the rule answers."""
    enabled: bool = True

    def item(self) -> dict[str, object]:
        if not self.enabled:
            return {"rule": self.rule, "enabled": False, "override": {"enabled": "replace"}}
        item: dict[str, object] = {"rule": self.rule}
        override: dict[str, str] = {}
        if self.append:
            item["condition"] = self.append
            override["condition"] = "append"
        if self.tags:
            item["tags"] = list(self.tags)
            override["tags"] = "append"
        item["override"] = override
        return item


def _gd(*finding_types: str) -> tuple[str, ...]:
    return tuple(guardduty.tag(t) for t in finding_types)


UPSTREAM_CHANGES: tuple[UpstreamChange, ...] = (
    UpstreamChange(
        "Pod Created in Kube Namespace",
        "kept (a workshop example); pods EKS's own components or a controller create for an object that names it "
        "as owner no longer count",
        append=f"and not {rules_common.TRUSTED_CREATOR.name}",
        tags=("T1610", "T1036.005", *_gd("Execution:Kubernetes/AnomalousBehavior.WorkloadDeployed")),
    ),
    UpstreamChange(
        "Create/Modify Configmap With Private Credentials",
        "kept (a workshop example)",
        tags=("T1552.001",),
    ),
    UpstreamChange(
        "Service Account Created in Kube Namespace",
        "kept; kube-controller-manager creating the namespaces' service accounts no longer counts",
        append=f"and not {rules_common.OWN_COMPONENT.name}",
        tags=("T1136",),
    ),
    UpstreamChange(
        "System ClusterRole Modified/Deleted",
        "kept; the API server's bootstrap of its default roles (73 alerts on a fresh control plane: its condition "
        "counts creates) and kube-controller-manager's role aggregation no longer count",
        append=f"and not ({rules_common.OWN_COMPONENT.name} or {rules_common.CONTROLLER.name})",
        tags=("T1098",),
    ),
    UpstreamChange("Create NodePort Service", "kept", tags=("T1133",)),
    UpstreamChange("K8s Secret Get Unsuccessfully Tried", "kept", tags=("T1552.007",)),
    UpstreamChange("Ingress Object without TLS Certificate Created", "kept", tags=("T1557",)),
    UpstreamChange(
        "Create Privileged Pod",
        "off: reads spec.containers of a pod only (not initContainers, ephemeral containers or a workload's "
        "template); the lab's 'Privileged Container Deployed' reads them all",
        enabled=False,
    ),
    UpstreamChange(
        "Create Sensitive Mount Pod",
        "off: pods only; replaced by 'Sensitive Host Path Mounted by Workload' (pods and templates)",
        enabled=False,
    ),
    UpstreamChange(
        "Create HostNetwork Pod",
        "off: pods only, and EKS's aws-node and kube-proxy pods raise it; replaced by 'Host Namespaces Shared With "
        "Workload'",
        enabled=False,
    ),
    UpstreamChange("Create HostPid Pod", "off: replaced by 'Host Namespaces Shared With Workload'", enabled=False),
    UpstreamChange("Create HostIPC Pod", "off: replaced by 'Host Namespaces Shared With Workload'", enabled=False),
    UpstreamChange(
        "Anonymous Request Allowed",
        "off: replaced by 'Successful Anonymous Request' (tagged, /version spared)",
        enabled=False,
    ),
    UpstreamChange(
        "Attach/Exec Pod",
        "off (Notice for everything); replaced by 'Exec Into kube-system Pod' and 'Exec Into Pod'",
        enabled=False,
    ),
    UpstreamChange(
        "port-forward",
        "off: fires on both stages of every request (two alerts each); replaced by 'Port Forward by a Non-Admin'",
        enabled=False,
    ),
    UpstreamChange(
        "EphemeralContainers Created",
        "off: replaced by 'Ephemeral Container Added to Pod' (Warning, only when RBAC allowed it)",
        enabled=False,
    ),
    UpstreamChange(
        "Create Disallowed Namespace",
        "off: every namespace outside kube-system, kube-public and default raises it; creating one is routine",
        enabled=False,
    ),
    UpstreamChange(
        "Attach to cluster-admin Role",
        "off: ClusterRoleBindings only, and the API server's own bootstrap binding raises it; replaced by 'Binding "
        "to cluster-admin Created'",
        enabled=False,
    ),
    UpstreamChange(
        "ClusterRole With Wildcard Created",
        "off: the API server's bootstrap roles raise it; replaced by 'Role With Wildcard Permissions Created'",
        enabled=False,
    ),
    UpstreamChange(
        "ClusterRole With Pod Exec Created",
        "off (Warning for routine developer roles); replaced by the Notice 'Role Granting Exec, Impersonation or "
        "Escalation Created'",
        enabled=False,
    ),
    UpstreamChange(
        "K8s Secret Get Successfully",
        "off: an Error for every secret read, Helm's and every controller's included; replaced by 'Secrets Read "
        "Cluster-Wide or in kube-system' and 'Default Service Account Used to Change or Read Secrets'",
        enabled=False,
    ),
)
"""The upstream rules the lab changes: Warning-or-above rules it keeps get their MITRE/GuardDuty tags, rules it
replaces with better ones are switched off (checked against the pinned names, like every override here)."""

LAB_RULE_CHANGES: tuple[UpstreamChange, ...] = (
    UpstreamChange(
        rules_workloads.KUBE_NAMESPACE_WORKLOAD.name,
        "with the upstream rules loaded, pods in kube-system are upstream's 'Pod Created in Kube Namespace' (a "
        "workshop example): the lab's rule keeps the other kinds, so a pod raises one alert, not two",
        append=f"and not {rules_workloads.POD_CREATE.name}",
    ),
)


def lab_rules(admin_access_alerts: bool = True) -> str:
    """The lab's changes to the upstream k8saudit rules (YAML text).

    Load it after k8s_audit_rules.yaml and after the lab's own rules (rules.DETECTION_FILE_NAME), whose
    macros it uses (the chart's rules_files order and the files' names do that). `admin_access_alerts`
    turns upstream's "Full K8s Administrative Access" on for the admin identities.
    """
    documents: list[dict[str, object]] = []
    if admin_access_alerts:
        documents += [
            {
                # Upstream keeps the rule off with an always-true macro; flip it.
                "macro": DISABLING_MACRO,
                "condition": "(k8s_audit_never_true)",
                "override": {"condition": "replace"},
            },
            {
                # Upstream's condition, plus this cluster's admins as EKS names them.
                "rule": ADMIN_RULE,
                "condition": (
                    "kevt and non_system_user"
                    f" and (ka.user.name in (full_admin_k8s_users) or {IDENTITY_MACRO})"
                    f" and not {DISABLING_MACRO}"
                ),
                "tags": ["T1078"],
                "override": {"condition": "replace", "tags": "append"},
            },
        ]
    documents.append(
        {
            # Appended (Falco adds it after a space), so upstream's own exclusions stay as they are.
            "rule": DISALLOWED_USER_RULE,
            "condition": f"and not {ALLOWED_USERS_MACRO}",
            "tags": ["T1078"],
            "override": {"condition": "append", "tags": "append"},
        }
    )
    documents += [change.item() for change in (*UPSTREAM_CHANGES, *LAB_RULE_CHANGES)]
    # The header names this module's place and name before components/falco/ (upstream_changes.py): a new text
    # would change the deployed file.
    header = (
        "# Generated by components/falco_rules.py for k8saudit-rules "
        f"{upstream.VERSION}: the lab's changes to the upstream rules (after {DETECTION_FILE_NAME}).\n"
    )
    text = header + rules_document.dump(documents)
    unknown = unknown_references(text)
    if unknown:
        # A programming error, not a user's: the overrides no longer fit the pinned upstream file.
        raise RuntimeError(f"generated rules reference names k8saudit-rules {upstream.VERSION} lacks: {unknown}")
    return text


def rules_files(
    admin_identities: Iterable[str] = (), allowed_identities: Iterable[str] = (), admin_access_alerts: bool = False
) -> dict[str, str]:
    """The chart's ``customRules``: file name -> rules YAML, in the order Falco loads rules.d (by name)."""
    admins = admin_matchers(admin_identities)
    allowed = admin_matchers(allowed_identities, "allowed_identities")
    detection = detection_rules([(m.value, m.prefix) for m in admins], [(m.value, m.prefix) for m in allowed])
    overrides = lab_rules(admin_access_alerts)
    return {DETECTION_FILE_NAME: detection, RULES_FILE_NAME: overrides}


# Words of Falco's condition syntax (libsinsp filter grammar); any other bare word is a macro or list.
_CONDITION_KEYWORDS = frozenset(
    {
        "and", "or", "not", "in", "intersects", "pmatch", "exists", "contains", "icontains", "bcontains",
        "bstartswith", "startswith", "endswith", "glob", "iglob", "regex", "val",
    }
)  # fmt: skip
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_WORD = re.compile(r"[A-Za-z_][\w.\-\[\]/]*")


@dataclass(frozen=True)
class References:
    """What a rules file overrides of, and references from, the files loaded before it."""

    overridden: dict[str, frozenset[str]]
    """Names the file overrides, by kind (rule, macro, list): they must exist upstream."""
    defined: dict[str, frozenset[str]]
    """Names the file defines itself (no override), by kind."""
    words: frozenset[str]
    """Bare words in conditions: macros or lists."""
    fields: frozenset[str]
    """Fields (dotted words) in conditions."""


def references(rules_text: str) -> References:
    """The names a rules file touches. Conditions are read strictly: every bare word must be a name.

    Unquoted literals (``in (kube-system)``) would count as names; the generated rules quote theirs.
    """
    overridden: dict[str, set[str]] = {"rule": set(), "macro": set(), "list": set()}
    defined: dict[str, set[str]] = {"rule": set(), "macro": set(), "list": set()}
    words: set[str] = set()
    fields: set[str] = set()
    for item in yaml.safe_load(rules_text) or []:
        kind = next((k for k in ("rule", "macro", "list") if k in item), None)
        if kind is None:
            continue  # required_engine_version and the like
        (overridden if "override" in item else defined)[kind].add(item[kind])
        for token in _WORD.findall(_QUOTED.sub(" ", str(item.get("condition", "")))):
            if "." in token:
                fields.add(token)
            elif token not in _CONDITION_KEYWORDS:
                words.add(token)
    return References(
        overridden={k: frozenset(v) for k, v in overridden.items()},
        defined={k: frozenset(v) for k, v in defined.items()},
        words=frozenset(words),
        fields=frozenset(fields),
    )


def unknown_references(rules_text: str, lab_text: str | None = None) -> list[str]:
    """What in `rules_text` does not fit the files loaded before it: the pinned upstream rules and the lab's own
    (`lab_text`, by default as generated without identities). Reported: overrides of names neither defines, macros,
    lists or fields neither file nor `rules_text` defines, and names it redefines without an override."""
    refs = references(rules_text)
    lab = references(lab_text if lab_text is not None else detection_rules())
    before = {
        kind: names | lab.defined[kind]
        for kind, names in (("rule", upstream.RULES), ("macro", upstream.MACROS), ("list", upstream.LISTS))
    }
    unknown = [f"{kind} {name!r}" for kind, names in refs.overridden.items() for name in sorted(names - before[kind])]
    unknown += [
        f"{kind} {name!r} redefined without an override"
        for kind, names in refs.defined.items()
        for name in sorted(names & before[kind])
    ]
    known_words = before["macro"] | before["list"] | refs.defined["macro"] | refs.defined["list"]
    unknown += [f"macro or list {word!r}" for word in sorted(refs.words - known_words)]
    unknown += [f"field {field!r}" for field in sorted(refs.fields - upstream.FIELDS)]
    return unknown
