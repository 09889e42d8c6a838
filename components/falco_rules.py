"""The lab's custom Falco rules: what the audit instance reports for the identities of an EKS cluster.

Upstream (falcosecurity/plugins, plugins/k8saudit/rules/k8s_audit_rules.yaml, pinned at the version
in components/k8saudit_upstream.py) knows the user names of kubeadm, kops or minikube clusters.
On EKS with access entries the API server writes the caller's IAM identity as the user name, and
for a role it carries the session name: ``arn:aws:sts::<account>:assumed-role/<role>/<session>``.
Two rules need the lab's help:

- "Full K8s Administrative Access" ships switched off (``not allowed_full_admin_users`` with an
  always-true macro) and only matches the names in ``full_admin_k8s_users``. The lab turns it on
  and adds its admin identities.
- "Disallowed K8s User" fires for every user outside ``allowed_k8s_users`` and
  ``eks_allowed_k8s_users`` that does not start with ``system:`` (``non_system_user``: nodes and
  service accounts are already out). On EKS that is every IAM identity, the lab's own admins
  included, and the upstream EKS list names only 11 of EKS's own ``eks:`` components. The lab
  also allows its admin identities and every ``eks:`` user (EKS refuses access entry user names
  that start with ``eks:``, so an IAM identity cannot take one through an access entry). Any
  other IAM identity, e.g. a second role someone granted access, is still reported.

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

from . import k8saudit_upstream as upstream
from .errors import ConfigError

RULES_FILE_NAME = "falco-eks-lab-rules.yaml"
"""Key under the chart's ``customRules``; the chart mounts it as /etc/falco/rules.d/<key>."""

ADMIN_RULE = "Full K8s Administrative Access"
DISALLOWED_USER_RULE = "Disallowed K8s User"
DISABLING_MACRO = "allowed_full_admin_users"
IDENTITY_MACRO = "eks_lab_admin_identities"
ALLOWED_USERS_MACRO = "eks_lab_allowed_k8s_users"
EKS_USER_PREFIX = "eks:"
"""EKS's own components (eks:node-manager, eks:addon-manager, ...); access entries cannot use it."""

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


def lab_rules(identities: Iterable[str]) -> str:
    """The rules file (YAML text) for the audit instance, with `identities` as the lab's admins.

    Load it after k8s_audit_rules.yaml (the chart's rules_files order does that for rules.d).
    """
    matchers = admin_matchers(identities)
    identity_condition = " or ".join(m.condition() for m in matchers) or "k8s_audit_never_true"
    documents = [
        {
            "macro": IDENTITY_MACRO,
            "condition": f"({identity_condition})",
        },
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
            "override": {"condition": "replace"},
        },
        {
            "macro": ALLOWED_USERS_MACRO,
            "condition": f'(ka.user.name startswith "{EKS_USER_PREFIX}" or {IDENTITY_MACRO})',
        },
        {
            # Appended (Falco adds it after a space), so upstream's own exclusions stay as they are.
            "rule": DISALLOWED_USER_RULE,
            "condition": f"and not {ALLOWED_USERS_MACRO}",
            "override": {"condition": "append"},
        },
    ]
    header = (
        "# Generated by components/falco_rules.py for k8saudit-rules "
        f"{upstream.VERSION}: EKS identities in the k8saudit rules.\n"
    )
    text = header + yaml.safe_dump(documents, sort_keys=False, width=1000)
    unknown = unknown_references(text)
    if unknown:
        # A programming error, not a user's: the overrides no longer fit the pinned upstream file.
        raise RuntimeError(f"generated rules reference names k8saudit-rules {upstream.VERSION} lacks: {unknown}")
    return text


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


def unknown_references(rules_text: str) -> list[str]:
    """What in `rules_text` does not fit the pinned upstream rules: overrides of names upstream lacks,
    macros, lists or fields neither file defines, and names it redefines without an override."""
    refs = references(rules_text)
    upstream_names = {"rule": upstream.RULES, "macro": upstream.MACROS, "list": upstream.LISTS}
    unknown = [
        f"{kind} {name!r}" for kind, names in refs.overridden.items() for name in sorted(names - upstream_names[kind])
    ]
    unknown += [
        f"{kind} {name!r} redefined without an override"
        for kind, names in refs.defined.items()
        for name in sorted(names & upstream_names[kind])
    ]
    known_words = upstream.MACROS | upstream.LISTS | refs.defined["macro"] | refs.defined["list"]
    unknown += [f"macro or list {word!r}" for word in sorted(refs.words - known_words)]
    unknown += [f"field {field!r}" for field in sorted(refs.fields - upstream.FIELDS)]
    return unknown
