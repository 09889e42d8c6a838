"""The lab's custom Falco rules: turn on "Full K8s Administrative Access" for the cluster's admins.

Upstream (falcosecurity/plugins, plugins/k8saudit/rules/k8s_audit_rules.yaml) ships the rule
switched off: its condition ends in ``not allowed_full_admin_users`` and that macro is
``(k8s_audit_always_true)``. It also only matches user names in the list ``full_admin_k8s_users``
(``admin``, ``kubernetes-admin``, ...), which are not the names EKS writes into the audit log
when a cluster uses access entries: there the user name is the caller's IAM identity, and for a
role it carries the session name, ``arn:aws:sts::<account>:assumed-role/<role>/<session>``.

The session name changes with every login (an SSO user's e-mail, ``botocore-session-<n>``, a CI
job id), so matching the exact ARN would miss the next login of the same admin role. A role is
therefore matched by the prefix ``arn:<partition>:sts::<account>:assumed-role/<role>/``: every
session of that role, and nothing of another role (the trailing ``/`` stops ``Admin`` from
matching ``AdminReadOnly``). IAM users and plain Kubernetes user names are matched exactly.

The identities end up inside double-quoted strings of a Falco condition rather than in a Falco
list, so characters that are legal in IAM names (``,`` ``=`` ``@`` ``+``) cannot split an item.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from .errors import ConfigError

RULES_FILE_NAME = "falco-eks-lab-rules.yaml"
"""Key under the chart's ``customRules``; the chart mounts it as /etc/falco/rules.d/<key>."""

ADMIN_RULE = "Full K8s Administrative Access"
DISABLING_MACRO = "allowed_full_admin_users"
IDENTITY_MACRO = "eks_lab_admin_identities"

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


def admin_access_rules(identities: Iterable[str]) -> str:
    """The rules file (YAML text) that enables "Full K8s Administrative Access" for `identities`.

    Load it after k8s_audit_rules.yaml (the chart's rules_files order does that for rules.d).
    """
    matchers = admin_matchers(identities)
    identity_condition = " or ".join(m.condition() for m in matchers) or "k8s_audit_never_true"
    documents = [
        {
            # Upstream keeps the rule off with an always-true macro; flip it.
            "macro": DISABLING_MACRO,
            "condition": "(k8s_audit_never_true)",
            "override": {"condition": "replace"},
        },
        {
            "macro": IDENTITY_MACRO,
            "condition": f"({identity_condition})",
        },
        {
            # Same as upstream, plus this cluster's admins as EKS names them.
            "rule": ADMIN_RULE,
            "condition": (
                "kevt and non_system_user"
                f" and (ka.user.name in (full_admin_k8s_users) or {IDENTITY_MACRO})"
                f" and not {DISABLING_MACRO}"
            ),
            "override": {"condition": "replace"},
        },
    ]
    header = "# Generated by components/falco_rules.py: enables the lab's admin-access example.\n"
    return header + yaml.safe_dump(documents, sort_keys=False, width=1000)
