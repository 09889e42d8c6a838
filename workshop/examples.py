"""The lab's examples: what each creates to trip one Falco rule, and how it cleans up."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from .kubectl import Kubectl, WorkshopError

WORKSHOP_NAMESPACE = "falco-workshop"
MANAGED_BY = {"app.kubernetes.io/managed-by": "falco-workshop"}
MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=falco-workshop"
# Not in the k8saudit rules' allowed kube-system image lists, and small.
IMAGE = "public.ecr.aws/docker/library/busybox:1.36.1"
WAIT_TIMEOUT = "180s"
# The examples AWS publishes in its documentation: they look like keys and open nothing.
EXAMPLE_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY/EXAMPLEKEY"  # noqa: S105 (AWS docs example)
AUDIT_DELAY_HINT = (
    "Audit events reach Falco through CloudWatch Logs and the forwarder: expect the alert within a few minutes."
)


@dataclass(frozen=True)
class Example:
    name: str
    rule: str
    source: str
    summary: str
    run: Callable[[Kubectl, TextIO], None]


def namespace_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": WORKSHOP_NAMESPACE,
            "labels": {**MANAGED_BY, "pod-security.kubernetes.io/enforce": "restricted"},
        },
    }


def demo_pod_manifest(name: str, namespace: str) -> dict[str, Any]:
    """A pod that passes the `restricted` Pod Security Standard and just sleeps."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "demo",
                    "image": IMAGE,
                    "command": ["sleep", "600"],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "32Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def credentials_configmap_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-credentials", "namespace": WORKSHOP_NAMESPACE, "labels": dict(MANAGED_BY)},
        "data": {
            "aws_access_key_id": EXAMPLE_ACCESS_KEY_ID,
            "aws_secret_access_key": EXAMPLE_SECRET_ACCESS_KEY,
        },
    }


def _cleanup(kubectl: Kubectl, out: TextIO, *steps: tuple[str, ...]) -> None:
    """Run every cleanup step even if one fails; report failures without hiding the original error."""
    failures = []
    for args in steps:
        result = kubectl.run(*args, check=False)
        if result.returncode != 0:
            failures.append(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    for failure in failures:
        out.write(f"cleanup failed (run `python -m workshop cleanup`): {failure}\n")


def _wait_ready(kubectl: Kubectl, namespace: str, name: str) -> None:
    kubectl.run("wait", "--namespace", namespace, "--for=condition=Ready", f"pod/{name}", f"--timeout={WAIT_TIMEOUT}")


def _delete_namespace() -> tuple[str, ...]:
    return ("delete", "namespace", WORKSHOP_NAMESPACE, "--ignore-not-found", f"--timeout={WAIT_TIMEOUT}")


def pod_in_kube_system(kubectl: Kubectl, out: TextIO) -> None:
    name = "falco-workshop-pod"
    out.write(f"Creating pod kube-system/{name} with image {IMAGE} ...\n")
    try:
        kubectl.create(demo_pod_manifest(name, "kube-system"))
        _wait_ready(kubectl, "kube-system", name)
        out.write("Pod is running in kube-system.\n")
    finally:
        delete_pod = ("delete", "pod", name, "--namespace", "kube-system", "--ignore-not-found", "--wait=false")
        _cleanup(kubectl, out, delete_pod)


def credentials_patch() -> dict[str, Any]:
    return {"data": {"aws_access_key_id": EXAMPLE_ACCESS_KEY_ID, "aws_secret_access_key": EXAMPLE_SECRET_ACCESS_KEY}}


def aws_auth_replacement_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        **credentials_patch(),
    }


def configmap_aws_credentials(kubectl: Kubectl, out: TextIO) -> None:
    """Two writes of a ConfigMap holding aws_access_key_id.

    EKS's audit policy (the Kubernetes reference policy plus one rule) records ConfigMap writes at
    Metadata level, without the body the rule inspects, except update/patch/delete of
    kube-system/aws-auth, which it records with request and response. So besides the workshop's own
    ConfigMap (what the rule catches on clusters that log request bodies), the example sends a
    server-side dry run of a write to aws-auth: the API server audits it with its body and changes nothing.
    """
    out.write(f"Creating ConfigMap {WORKSHOP_NAMESPACE}/aws-credentials holding aws_access_key_id ...\n")
    try:
        kubectl.apply(namespace_manifest())
        kubectl.create(credentials_configmap_manifest())
        kubectl.run("get", "configmap", "aws-credentials", "--namespace", WORKSHOP_NAMESPACE, "-o", "name")
        out.write("ConfigMap created (EKS logs its creation without the data).\n")
        out.write("Sending the same keys to kube-system/aws-auth as a server-side dry run (nothing is changed) ...\n")
        exists = kubectl.run(
            "get", "configmap", "aws-auth", "--namespace", "kube-system", "--ignore-not-found", "-o", "name"
        ).stdout.strip()
        if exists:
            kubectl.run(
                "patch", "configmap", "aws-auth", "--namespace", "kube-system", "--type=merge",
                "--dry-run=server", "-p", json.dumps(credentials_patch()),
            )  # fmt: skip
        else:
            # No aws-auth (access entries only): kubectl patch would stop at its own GET, a replace is
            # sent and audited with its body, then refused with NotFound, which is expected here.
            result = kubectl.run(
                "replace", "--dry-run=server", "-f", "-", stdin=json.dumps(aws_auth_replacement_manifest()), check=False
            )
            if result.returncode != 0 and "NotFound" not in result.stderr and "not found" not in result.stderr:
                raise WorkshopError(f"dry-run write to kube-system/aws-auth failed: {result.stderr.strip()}")
        out.write("Dry run sent.\n")
    finally:
        _cleanup(kubectl, out, _delete_namespace())


def admin_access(kubectl: Kubectl, out: TextIO) -> None:
    whoami = kubectl.run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", check=False)
    if whoami.returncode == 0 and whoami.stdout.strip():
        out.write(f"The API server sees you as: {whoami.stdout.strip()}\n")
        out.write("The rule fires for that name only if it is a lab admin identity (falcoAdminIdentities).\n")
    out.write(f"Creating and deleting namespace {WORKSHOP_NAMESPACE} as that identity ...\n")
    try:
        kubectl.apply(namespace_manifest())
    finally:
        _cleanup(kubectl, out, _delete_namespace())


SHELL_COMMAND = ("sh", "-c", "echo 'Falco workshop: shell with a terminal in a container'; id")


def terminal_shell(kubectl: Kubectl, out: TextIO) -> None:
    """`kubectl exec -it <pod> -- sh -c ...` under a pseudo-terminal that this program opens.

    "Terminal shell in container" (falco_rules.yaml 5.1.0) wants an execve of a shell (`sh`) in a
    container, with a controlling terminal (proc.tty != 0), started as the container's entrypoint
    or exec point (no parent, or a parent such as runc). `kubectl exec -t` only asks the container
    runtime for a TTY when kubectl's own stdin is a terminal; the pseudo-terminal gives it one
    whether or not the attendee's shell, make or CI has one. The runtime then starts `sh` with that
    TTY, as runc's child: all four conditions hold. The command ends by itself.
    """
    name = "falco-workshop-shell"
    out.write(f"Starting pod {WORKSHOP_NAMESPACE}/{name} ...\n")
    try:
        kubectl.apply(namespace_manifest())
        kubectl.create(demo_pod_manifest(name, WORKSHOP_NAMESPACE))
        _wait_ready(kubectl, WORKSHOP_NAMESPACE, name)
        out.write("Opening a shell with a terminal in the container (kubectl exec -it, under a pseudo-terminal) ...\n")
        result = kubectl.in_terminal("exec", "-it", "--namespace", WORKSHOP_NAMESPACE, name, "--", *SHELL_COMMAND)
        for line in result.stdout.splitlines():
            out.write(f"    {line}\n")
        if result.returncode != 0:
            raise WorkshopError(f"kubectl exec exited with {result.returncode}: {result.stdout.strip()}")
    finally:
        _cleanup(kubectl, out, _delete_namespace())


EXAMPLES: dict[str, Example] = {
    e.name: e
    for e in (
        Example(
            "pod-in-kube-system",
            "Pod Created in Kube Namespace",
            "k8s_audit",
            "a pod in kube-system whose image is not on the allowed system image lists",
            pod_in_kube_system,
        ),
        Example(
            "configmap-aws-credentials",
            "Create/Modify Configmap With Private Credentials",
            "k8s_audit",
            "a ConfigMap holding aws_access_key_id (and a dry-run write of it to aws-auth, which EKS audits in full)",
            configmap_aws_credentials,
        ),
        Example(
            "admin-access",
            "Full K8s Administrative Access",
            "k8s_audit",
            "any request by a lab admin identity (here: create and delete a namespace)",
            admin_access,
        ),
        Example(
            "terminal-shell",
            "Terminal shell in container",
            "syscall",
            "a shell with a terminal spawned in a container with kubectl exec -it (under a pseudo-terminal)",
            terminal_shell,
        ),
    )
}


def cleanup_everything(kubectl: Kubectl, out: TextIO) -> None:
    """Remove whatever any example left behind (all of it carries the workshop label)."""
    out.write("Removing workshop objects ...\n")
    steps = (
        ("delete", "pod", "--namespace", "kube-system", "-l", MANAGED_BY_SELECTOR, "--ignore-not-found"),
        ("delete", "namespace", "-l", MANAGED_BY_SELECTOR, "--ignore-not-found", f"--timeout={WAIT_TIMEOUT}"),
    )
    failures = [args for args in steps if kubectl.run(*args, check=False).returncode != 0]
    if failures:
        raise WorkshopError("cleanup did not finish: " + "; ".join("kubectl " + " ".join(a) for a in failures))
    out.write("Done.\n")
