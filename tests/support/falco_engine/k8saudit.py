"""Field extraction of the k8saudit plugin, field by field as plugins/k8saudit/pkg/k8saudit/extract.go
does it at v0.16.1 (v0.15.0 is the same but for value offsets, which no rule sees).

Every extraction error of the plugin (``field not available``, ``wrong type conversion``, a bad URL)
leaves the field without a value: libsinsp (``sinsp_plugin::extract_fields_and_offsets``) treats a
failed extraction like a missing one. A list field that extracts no element has no value either
(``plugin_filtercheck.cpp``: ``res_len == 0``). What the Go code does that one would not guess:

- Every ``ka.*`` field is missing when the event has no ``auditID``.
- A path through an array fans out over its elements (``getValuesRecursive``); with an index
  argument the index picks an element of *every* array on the way, so ``ka.req.role.rules.verbs[0]``
  is all verbs of the first rule, not the first verb.
- ``ka.req.pod.containers.image`` and ``.name`` are missing when any container lacks the key;
  ``.privileged`` and most others skip such containers.
- ``ka.req.service.ports`` is one element: the whole ``ports`` array as JSON.
- ``ka.sourceips`` reads ``requestObject.rules[].sourceIPs``, and ``eff_run_as_user/group`` read
  paths Kubernetes never writes (see components.falco.fields.CAVEATS).
- ``ka.uri.param`` is missing when Go's ``url.ParseQuery`` reports any error for the query,
  e.g. a raw ``;`` anywhere in it (Go 1.17+).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from . import jsonvalue as jv
from .errors import UnsupportedError

NO_INDEX: Final = -1

Extracted = str | list[str] | None
"""A field's value: a string, a non-empty list of strings (list fields), or None (no value)."""


class _NotAvailableError(Exception):
    pass


class _ExtractError(Exception):
    pass


def _as_string(value: jv.Value | None) -> str:
    if value is None:
        raise _ExtractError("wrong type conversion")
    return jv.as_string(value)


def _values_recursive(value: jv.Value, index: int, keys: tuple[str, ...]) -> list[jv.Value | None]:
    """``getValuesRecursive``: None stands for an element where the path was not available."""
    for i, key in enumerate(keys):
        if jv.type_of(value) == jv.ARRAY:
            if index == NO_INDEX:
                found: list[jv.Value | None] = []
                for item in value:  # type: ignore[union-attr]
                    try:
                        found.extend(_values_recursive(item, index, keys[i:]))
                    except _NotAvailableError:
                        found.append(None)
                return found
            if index >= len(value):  # type: ignore[arg-type]
                raise _NotAvailableError
            value = value[index]  # type: ignore[index]
        if key:
            found_value = jv.get(value, key)
            if found_value is None:
                raise _NotAvailableError
            value = found_value
    return [value]


def _strings(values: list[jv.Value | None]) -> list[str]:
    return [_as_string(v) for v in values]


def _strings_skip_nil(values: list[jv.Value | None]) -> list[str]:
    return [jv.as_string(v) for v in values if v is not None]


def _from_keys(root: jv.Value, is_list: bool, keys: tuple[str, ...]) -> str | list[str]:
    value = jv.get(root, *keys)
    if value is None:
        raise _NotAvailableError
    if is_list:
        if jv.type_of(value) != jv.ARRAY:
            raise _ExtractError("wrong type conversion")
        return [_as_string(item) for item in value]  # type: ignore[union-attr]
    return _as_string(value)


def _subject_names(root: jv.Value, kind: str) -> list[str]:
    names: list[str] = []
    subjects = jv.get(root, "requestObject", "subjects")
    if subjects is None:
        return names
    if jv.type_of(subjects) != jv.ARRAY:
        raise _ExtractError("wrong type conversion")
    namespaced = kind == "NamespacedServiceAccount"
    if namespaced:
        kind = "ServiceAccount"
    for subject in subjects:  # type: ignore[union-attr]
        subject_kind, subject_name = jv.get(subject, "kind"), jv.get(subject, "name")
        if subject_kind is None or subject_name is None or jv.as_string(subject_kind) != kind:
            continue
        name = jv.as_string(subject_name)
        if namespaced:
            namespace = jv.get(subject, "namespace")
            if namespace is None:
                continue
            name = jv.as_string(namespace) + ":" + name
        names.append(name)
    return names


def _container_images(root: jv.Value, index: int) -> list[str]:
    return _strings(_values_recursive(root, index, ("requestObject", "spec", "containers", "image")))


def _repository(image: str) -> str:
    return image.split(":")[0].split("@")[0]


def _joined_string_arrays(root: jv.Value, index: int, key: str) -> list[str]:
    """``readContainerCommands`` / ``readContainerArgs``: each container's array joined by spaces."""
    joined: list[str] = []
    for value in _values_recursive(root, index, ("requestObject", "spec", "containers", key)):
        if value is None:
            continue
        if jv.type_of(value) != jv.ARRAY:
            raise _ExtractError("wrong type conversion")
        parts = []
        for part in value:  # type: ignore[union-attr]
            if jv.type_of(part) != jv.STRING:
                raise _ExtractError("wrong type conversion")
            parts.append(jv.as_string(part))
        joined.append(" ".join(parts))
    if not joined:
        raise _NotAvailableError
    return joined


def _host_ports(root: jv.Value, index: int) -> list[str]:
    ports_found: list[str] = []
    for ports in _values_recursive(root, index, ("requestObject", "spec", "containers", "ports")):
        if ports is None:
            continue
        if jv.type_of(ports) != jv.ARRAY:
            raise _ExtractError("wrong type conversion")
        for port in ports:  # type: ignore[union-attr]
            host_port = jv.get(port, "hostPort")
            if host_port is not None:
                ports_found.append(jv.as_string(host_port))
                continue
            container_port = jv.get(port, "containerPort")
            if container_port is not None:
                ports_found.append(jv.as_string(container_port))
    return ports_found


def _effective_ids(root: jv.Value, index: int, key: str) -> list[str]:
    pod_value = jv.get(root, "requestObject", "spec", key)
    pod_id = "0" if pod_value is None else jv.as_string(pod_value)
    values = _values_recursive(root, index, ("requestObject", "spec", "containers", key))
    return [pod_id if v is None else jv.as_string(v) for v in values]


def _rules_field(root: jv.Value, index: int, key: str) -> list[str]:
    found: list[str] = []
    for value in _values_recursive(root, index, ("requestObject", "rules", key)):
        if value is not None and jv.type_of(value) == jv.ARRAY:
            found.extend(jv.as_string(item) for item in value)  # type: ignore[union-attr]
    return found


def _volume_types(root: jv.Value, index: int) -> list[str]:
    types: list[str] = []
    for value in _values_recursive(root, index, ("requestObject", "spec", "volumes", "")):
        if value is None:
            # The plugin calls Type() on a nil value here and panics.
            raise UnsupportedError("ka.req.pod.volumes.volume_type on this event makes the k8saudit plugin panic")
        if jv.type_of(value) == jv.OBJECT:
            types.extend(key for key, _ in value.visit() if key != "name")  # type: ignore[union-attr]
    return types


def _volume_hostpath(root: jv.Value, arg: str) -> str:
    keys = ("requestObject", "spec", "volumes", "hostPath", "path")
    paths = _strings_skip_nil(_values_recursive(root, NO_INDEX, keys))
    prefix = arg.endswith("*")
    for path in paths:
        if (prefix and path.startswith(arg[:-1])) or arg == path:
            return "true"
    return "false"


def _uri_param(root: jv.Value, key: str) -> str:
    uri_value = jv.get(root, "requestURI")
    if uri_value is None:
        raise _NotAvailableError
    values = go_parse_query(_go_url_raw_query(_as_string(uri_value)))
    if key not in values:
        raise _NotAvailableError
    return values[key][0]


_CTL: Final = re.compile(r"[\x00-\x1f\x7f]")
_BAD_PERCENT: Final = re.compile(r"%(?![0-9a-fA-F]{2})")


def _go_url_raw_query(uri: str) -> str:
    """The RawQuery of Go's ``url.Parse(uri)`` for an absolute path; _ExtractError where Parse fails."""
    if _CTL.search(uri):
        raise _ExtractError("invalid control character in URL")
    rest, _, fragment = uri.partition("#")
    if not rest.startswith("/") or rest.startswith("//"):
        raise UnsupportedError(f"ka.uri.param of a requestURI that is not an absolute path: {uri!r}")
    if rest.endswith("?") and rest.count("?") == 1:
        path, query = rest[:-1], ""
    else:
        path, _, query = rest.partition("?")
    if _BAD_PERCENT.search(path) or _BAD_PERCENT.search(fragment):
        raise _ExtractError("invalid URL escape")
    return query


def _go_query_unescape(text: str) -> str:
    if _BAD_PERCENT.search(text):
        raise _ExtractError("invalid URL escape")
    raw = bytearray()
    i = 0
    data = text.encode("utf-8")
    while i < len(data):
        c = data[i]
        if c == 0x25:  # %
            raw.append(int(data[i + 1 : i + 3], 16))
            i += 3
            continue
        raw.append(0x20 if c == 0x2B else c)  # + is a space
        i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedError(f"ka.uri.param: query part {text!r} decodes to bytes that are not UTF-8") from None


def go_parse_query(query: str) -> dict[str, list[str]]:
    """Go's ``url.ParseQuery`` (Go 1.17+); _ExtractError if it reports any error (the plugin then has no value)."""
    values: dict[str, list[str]] = {}
    error = False
    for part in query.split("&") if query else []:
        if ";" in part:
            error = True
            continue
        if not part:
            continue
        key, _, value = part.partition("=")
        try:
            key, value = _go_query_unescape(key), _go_query_unescape(value)
        except _ExtractError:
            error = True
            continue
        values.setdefault(key, []).append(value)
    if error:
        raise _ExtractError("invalid query")
    return values


def _target_pod_name(root: jv.Value) -> str:
    resource = jv.get(root, "objectRef", "resource")
    if resource is not None and jv.type_of(resource) == jv.STRING and jv.as_string(resource) == "pods":
        subresource = jv.get(root, "objectRef", "subresource")
        sub = jv.as_string(subresource) if subresource is not None and jv.type_of(subresource) == jv.STRING else ""
        if sub == "":
            return _from_keys(root, False, ("responseObject", "metadata", "name"))  # type: ignore[return-value]
    raise _NotAvailableError


def _privileged_any(root: jv.Value) -> str:
    values = _values_recursive(root, NO_INDEX, ("requestObject", "spec", "containers", "securityContext", "privileged"))
    return "true" if any(v is True for v in values) else "false"


def _container_path(*keys: str) -> tuple[str, ...]:
    return ("requestObject", "spec", "containers", *keys)


# name -> (list field?, keys) for the fields that are a plain lookup (extractFromKeys).
_FROM_KEYS: Final[dict[str, tuple[bool, tuple[str, ...]]]] = {
    "ka.auditid": (False, ("auditID",)),
    "ka.stage": (False, ("stage",)),
    "ka.auth.decision": (False, ("annotations", "authorization.k8s.io/decision")),
    "ka.auth.reason": (False, ("annotations", "authorization.k8s.io/reason")),
    "ka.auth.openshift.decision": (False, ("annotations", "authentication.openshift.io/decision")),
    "ka.auth.openshift.username": (False, ("annotations", "authentication.openshift.io/username")),
    "ka.validations.admission.policy.failure": (
        False,
        ("annotations", "validation.policy.admission.k8s.io/validation_failure"),
    ),
    "ka.security.pod.violations": (False, ("annotations", "pod-security.kubernetes.io/audit-violations")),
    "ka.user.name": (False, ("user", "username")),
    "ka.user.groups": (True, ("user", "groups")),
    "ka.impuser.name": (False, ("impersonatedUser", "username")),
    "ka.verb": (False, ("verb",)),
    "ka.uri": (False, ("requestURI",)),
    "ka.target.name": (False, ("objectRef", "name")),
    "ka.target.namespace": (False, ("objectRef", "namespace")),
    "ka.target.resource": (False, ("objectRef", "resource")),
    "ka.target.subresource": (False, ("objectRef", "subresource")),
    "ka.req.binding.subjects": (True, ("requestObject", "subjects")),
    "ka.req.binding.role": (False, ("requestObject", "roleRef", "name")),
    "ka.req.configmap.name": (False, ("objectRef", "name")),
    "ka.req.configmap.obj": (False, ("requestObject", "data")),
    "ka.req.pod.host_ipc": (False, ("requestObject", "spec", "hostIPC")),
    "ka.req.pod.host_network": (False, ("requestObject", "spec", "hostNetwork")),
    "ka.req.container.host_network": (False, ("requestObject", "spec", "hostNetwork")),
    "ka.req.pod.host_pid": (False, ("requestObject", "spec", "hostPID")),
    "ka.req.pod.run_as_user": (False, ("requestObject", "spec", "securityContext", "runAsUser")),
    "ka.req.pod.run_as_group": (False, ("requestObject", "spec", "securityContext", "runAsGroup")),
    "ka.req.role.rules": (True, ("requestObject", "rules")),
    "ka.req.pod.fs_group": (False, ("requestObject", "spec", "securityContext", "fsGroup")),
    "ka.req.pod.supplemental_groups": (True, ("requestObject", "spec", "securityContext", "supplementalGroups")),
    "ka.req.service.type": (False, ("requestObject", "spec", "type")),
    "ka.resp.name": (False, ("responseObject", "metadata", "name")),
    "ka.response.code": (False, ("responseStatus", "code")),
    "ka.response.reason": (False, ("responseStatus", "reason")),
    "ka.useragent": (False, ("userAgent",)),
    "ka.cluster.name": (False, ("annotations", "cluster_name")),
}

# name -> keys of the securityContext-style fields read with getValuesRecursive, nil elements skipped.
_SKIP_NIL: Final[dict[str, tuple[str, ...]]] = {
    "ka.req.pod.containers.privileged": _container_path("securityContext", "privileged"),
    "ka.req.pod.containers.allow_privilege_escalation": _container_path("securityContext", "allowPrivilegeEscalation"),
    "ka.req.pod.containers.read_only_fs": _container_path("securityContext", "readOnlyRootFilesystem"),
    "ka.req.pod.containers.run_as_user": _container_path("securityContext", "runAsUser"),
    "ka.req.pod.containers.run_as_group": _container_path("securityContext", "runAsGroup"),
    "ka.req.pod.containers.proc_mount": _container_path("securityContext", "procMount"),
    "ka.req.pod.containers.add_capabilities": _container_path("securityContext", "capabilities", "add"),
    "ka.req.service.ports": ("requestObject", "spec", "ports"),
    "ka.req.pod.volumes.hostpath": ("requestObject", "spec", "volumes", "hostPath", "path"),
    "ka.req.pod.volumes.flexvolume_driver": ("requestObject", "spec", "volumes", "flexVolume", "driver"),
}


def extractor(name: str, arg: str | None, index: int) -> Callable[[jv.Value], str | list[str]]:
    """A function of the plugin's parsed event that returns the field's value or raises (no value).

    ``index`` is the index argument, or NO_INDEX; ``arg`` the key argument.
    """
    if name in _FROM_KEYS:
        is_list, keys = _FROM_KEYS[name]
        return lambda root: _from_keys(root, is_list, keys)
    if name in _SKIP_NIL:
        keys = _SKIP_NIL[name]
        return lambda root: _strings_skip_nil(_values_recursive(root, index, keys))
    simple: dict[str, Callable[[jv.Value], str | list[str]]] = {
        "ka.uri.param": lambda root: _uri_param(root, arg or ""),
        "ka.target.pod.name": _target_pod_name,
        "ka.req.binding.subjects.user_names": lambda root: _subject_names(root, "User"),
        "ka.req.binding.subjects.serviceaccount_names": lambda root: _subject_names(root, "ServiceAccount"),
        "ka.req.binding.subjects.serviceaccount_ns_names": lambda root: _subject_names(
            root, "NamespacedServiceAccount"
        ),
        "ka.req.binding.subjects.group_names": lambda root: _subject_names(root, "Group"),
        "ka.req.binding.subject.has_name": lambda root: "true",
        "ka.req.pod.containers.args": lambda root: _joined_string_arrays(root, index, "args"),
        "ka.req.pod.containers.command": lambda root: _joined_string_arrays(root, index, "command"),
        "ka.req.pod.containers.name": lambda root: _strings(_values_recursive(root, index, _container_path("name"))),
        "ka.req.pod.containers.image": lambda root: _container_images(root, index),
        "ka.req.pod.containers.image.repository": lambda root: [
            _repository(image) for image in _container_images(root, index)
        ],
        "ka.req.container.image": lambda root: _container_images(root, 0)[0],
        "ka.req.container.image.repository": lambda root: _repository(_container_images(root, 0)[0]),
        "ka.req.pod.containers.host_port": lambda root: _host_ports(root, index),
        "ka.req.container.privileged": _privileged_any,
        "ka.req.pod.containers.eff_run_as_user": lambda root: _effective_ids(root, index, "runAsUser"),
        "ka.req.pod.containers.eff_run_as_group": lambda root: _effective_ids(root, index, "runAsGroup"),
        "ka.req.role.rules.apiGroups": lambda root: _rules_field(root, index, "apiGroups"),
        "ka.req.role.rules.nonResourceURLs": lambda root: _rules_field(root, index, "nonResourceURLs"),
        "ka.req.role.rules.verbs": lambda root: _rules_field(root, index, "verbs"),
        "ka.req.role.rules.resources": lambda root: _rules_field(root, index, "resources"),
        "ka.req.volume.hostpath": lambda root: _volume_hostpath(root, arg or ""),
        "ka.req.pod.volumes.volume_type": lambda root: _volume_types(root, index),
        "ka.sourceips": lambda root: _rules_field(root, index, "sourceIPs"),
    }
    if name not in simple:
        raise UnsupportedError(f"k8saudit field {name} has no extractor in the evaluator")
    return simple[name]


def extract(function: Callable[[jv.Value], str | list[str]], root: jv.Value) -> Extracted:
    """Run an extractor as the plugin and libsinsp together do: no value on any plugin error, on an
    empty list, and on an event without auditID; strings cut at a NUL (libsinsp reads C strings)."""
    if jv.get(root, "auditID") is None:
        return None
    try:
        value = function(root)
    except (_NotAvailableError, _ExtractError):
        return None
    if isinstance(value, list):
        if not value:
            return None
        return [v.split("\0", 1)[0] for v in value]
    return value.split("\0", 1)[0]
