"""The fields a Falco rule for the ``k8s_audit`` source may use with the lab's pinned plugins.

One catalog for every part of the project that writes or checks a rule condition or output: the
rule generator refuses a field that is not here, and the tests' rule evaluator extracts exactly these.
Facts read from falcosecurity/plugins at the pinned tags (k8saudit 0.15.0 defines the same fields):

- ``plugins/k8saudit/v0.16.1``: ``plugins/k8saudit/pkg/k8saudit/fields.go`` (names, types, list
  fields, arguments) and ``extract.go`` (where each value comes from).
- ``plugins/json/v0.7.4``: ``plugins/json/pkg/json/json.go``.

An argument is written in brackets after the name: a key (``ka.uri.param[command]``,
``jevt.value[/objectRef/name]``) or a decimal index (``ka.req.pod.containers.image[0]``). Falco
(libsinsp 0.25.4, ``plugin_filtercheck.cpp``) refuses an argument on a field that takes none, an
index that is not plain decimal (``01`` and ``-1`` are refused), and a field whose argument is
required but missing. A list field stays a list when it is indexed: it takes only ``in``,
``intersects`` and ``exists`` (libsinsp ``filter_compare.cpp``).

When a pinned plugin version changes, re-read both files at the new tag and update this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

K8SAUDIT_PLUGIN: Final = "k8saudit"
JSON_PLUGIN: Final = "json"
K8SAUDIT_VERSION: Final = "0.16.1"
"""Must equal k8saudit_upstream.VERSION (a test checks it)."""
JSON_VERSION: Final = "0.7.4"

ArgKind = Literal["none", "index", "key"]


@dataclass(frozen=True)
class FieldSpec:
    """One field as the plugin declares it."""

    name: str
    plugin: str
    type: Literal["string", "uint64"]
    is_list: bool
    arg: ArgKind
    """What may follow in brackets: nothing, a decimal index into the list, or a key."""
    arg_required: bool = False

    def reference(self, arg: str | None = None) -> str:
        """The field as a condition or output writes it, e.g. ``ka.uri.param[command]``."""
        if arg is None:
            if self.arg_required:
                raise ValueError(f"field {self.name} requires an argument")
            return self.name
        if self.arg == "none":
            raise ValueError(f"field {self.name} takes no argument")
        if self.arg == "index" and not is_index(arg):
            raise ValueError(f"field {self.name} takes a decimal index, not {arg!r}")
        if not arg or any(c in arg for c in "[] \t\n\r\"'"):
            # libsinsp cuts a field name at its first space and its argument at the first ']'.
            raise ValueError(f"argument {arg!r} of field {self.name} cannot be written in a rule")
        return f"{self.name}[{arg}]"


def is_index(arg: str) -> bool:
    """An index argument as libsinsp accepts it: decimal digits, no leading zero (``0`` itself is fine)."""
    return arg.isascii() and arg.isdigit() and (arg == "0" or not arg.startswith("0")) and int(arg) < 2**64


def _k(name: str, is_list: bool = False, arg: ArgKind = "none", required: bool = False) -> FieldSpec:
    return FieldSpec(name, K8SAUDIT_PLUGIN, "string", is_list, arg, required)


def _j(name: str, arg: ArgKind = "none", required: bool = False) -> FieldSpec:
    return FieldSpec(name, JSON_PLUGIN, "string", False, arg, required)


_LIST = True
K8SAUDIT_FIELDS: Final[tuple[FieldSpec, ...]] = (
    _k("ka.auditid"),
    _k("ka.stage"),
    _k("ka.auth.decision"),
    _k("ka.auth.reason"),
    _k("ka.auth.openshift.decision"),
    _k("ka.validations.admission.policy.failure"),
    _k("ka.security.pod.violations"),
    _k("ka.auth.openshift.username"),
    _k("ka.user.name"),
    _k("ka.user.groups", _LIST),
    _k("ka.impuser.name"),
    _k("ka.verb"),
    _k("ka.uri"),
    _k("ka.uri.param", arg="key", required=True),
    _k("ka.target.name"),
    _k("ka.target.namespace"),
    _k("ka.target.resource"),
    _k("ka.target.subresource"),
    _k("ka.target.pod.name"),
    _k("ka.req.binding.subjects", _LIST),
    _k("ka.req.binding.subjects.user_names", _LIST),
    _k("ka.req.binding.subjects.serviceaccount_names", _LIST),
    _k("ka.req.binding.subjects.serviceaccount_ns_names", _LIST),
    _k("ka.req.binding.subjects.group_names", _LIST),
    _k("ka.req.binding.role"),
    _k("ka.req.binding.subject.has_name", arg="key", required=True),
    _k("ka.req.configmap.name"),
    _k("ka.req.configmap.obj"),
    _k("ka.req.pod.containers.args", _LIST, "index"),
    _k("ka.req.pod.containers.command", _LIST, "index"),
    _k("ka.req.pod.containers.name", _LIST, "index"),
    _k("ka.req.pod.containers.image", _LIST, "index"),
    _k("ka.req.container.image"),
    _k("ka.req.pod.containers.image.repository", _LIST, "index"),
    _k("ka.req.container.image.repository"),
    _k("ka.req.pod.host_ipc"),
    _k("ka.req.pod.host_network"),
    _k("ka.req.container.host_network"),
    _k("ka.req.pod.host_pid"),
    _k("ka.req.pod.containers.host_port", _LIST, "index"),
    _k("ka.req.pod.containers.privileged", _LIST, "index"),
    _k("ka.req.container.privileged"),
    _k("ka.req.pod.containers.allow_privilege_escalation", _LIST, "index"),
    _k("ka.req.pod.containers.read_only_fs", _LIST, "index"),
    _k("ka.req.pod.run_as_user"),
    _k("ka.req.pod.containers.run_as_user", _LIST, "index"),
    _k("ka.req.pod.containers.eff_run_as_user", _LIST, "index"),
    _k("ka.req.pod.run_as_group"),
    _k("ka.req.pod.containers.run_as_group", _LIST, "index"),
    _k("ka.req.pod.containers.eff_run_as_group", _LIST, "index"),
    _k("ka.req.pod.containers.proc_mount", _LIST, "index"),
    _k("ka.req.role.rules", _LIST),
    _k("ka.req.role.rules.apiGroups", _LIST, "index"),
    _k("ka.req.role.rules.nonResourceURLs", _LIST, "index"),
    _k("ka.req.role.rules.verbs", _LIST, "index"),
    _k("ka.req.role.rules.resources", _LIST, "index"),
    _k("ka.req.pod.fs_group"),
    _k("ka.req.pod.supplemental_groups", _LIST),
    _k("ka.req.pod.containers.add_capabilities", _LIST, "index"),
    _k("ka.req.service.type"),
    _k("ka.req.service.ports", _LIST, "index"),
    _k("ka.req.pod.volumes.hostpath", _LIST, "index"),
    _k("ka.req.volume.hostpath", arg="key", required=True),
    _k("ka.req.pod.volumes.flexvolume_driver", _LIST, "index"),
    _k("ka.req.pod.volumes.volume_type", _LIST, "index"),
    _k("ka.resp.name"),
    _k("ka.response.code"),
    _k("ka.response.reason"),
    _k("ka.useragent"),
    _k("ka.sourceips", _LIST, "index"),
    _k("ka.cluster.name"),
)
"""In the plugin's declaration order (fields.go)."""

JSON_FIELDS: Final[tuple[FieldSpec, ...]] = (
    _j("json.value", "key", required=True),
    _j("json.obj"),
    _j("json.rawtime"),
    _j("jevt.value", "key", required=True),
    _j("jevt.obj"),
    _j("jevt.rawtime"),
)
"""``json.value[<JSON pointer>]`` (RFC 6901); ``jevt.*`` are the older aliases the upstream rules use."""

FIELDS: Final[tuple[FieldSpec, ...]] = K8SAUDIT_FIELDS + JSON_FIELDS
BY_NAME: Final[dict[str, FieldSpec]] = {f.name: f for f in FIELDS}

CAVEATS: Final[dict[str, str]] = {
    "ka.sourceips": "reads requestObject.rules[].sourceIPs (extract.go), not the event's sourceIPs: "
    "missing on every real audit event; use jevt.value[/sourceIPs/0]",
    "ka.req.pod.containers.eff_run_as_user": "reads spec.runAsUser and containers[].runAsUser, which "
    "Kubernetes never sets (the real ones are under securityContext): '0' for every container",
    "ka.req.pod.containers.eff_run_as_group": "same paths as eff_run_as_user with runAsGroup: '0' for every container",
    "ka.req.binding.subject.has_name": "always 'true', whatever the argument",
}
"""Fields that exist but do not mean what their names say, read in extract.go at the pinned tag."""


def field(name: str) -> FieldSpec:
    """The field called ``name`` (no argument); KeyError naming it when the pinned plugins lack it."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"{name!r} is not a field of the pinned k8saudit {K8SAUDIT_VERSION} or json {JSON_VERSION} plugins"
        ) from None
