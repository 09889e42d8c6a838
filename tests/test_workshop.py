"""The workshop CLI with a recording kubectl/pulumi runner: exact commands, manifests, cleanup, alert parsing."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from workshop.alerts import parse_line, parse_lines
from workshop.cli import main
from workshop.kubectl import Result

KUBECONFIG_JSON = json.dumps({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []})

# allowed_kube_namespace_image_list in falcosecurity/plugins k8s_audit_rules.yaml (the rule's exceptions).
ALLOWED_KUBE_NAMESPACE_IMAGES = {
    "gcr.io/google-containers/prometheus-to-sd", "gcr.io/projectcalico-org/node", "gke.gcr.io/addon-resizer",
    "gke.gcr.io/heapster", "gke.gcr.io/gke-metadata-server", "registry.k8s.io/ip-masq-agent-amd64",
    "registry.k8s.io/kube-apiserver", "gke.gcr.io/kube-proxy", "gke.gcr.io/netd-amd64", "gke.gcr.io/watcher-daemonset",
    "registry.k8s.io/addon-resizer", "registry.k8s.io/prometheus-to-sd", "registry.k8s.io/k8s-dns-dnsmasq-nanny-amd64",
    "registry.k8s.io/k8s-dns-kube-dns-amd64", "registry.k8s.io/k8s-dns-sidecar-amd64",
    "registry.k8s.io/metrics-server-amd64", "kope/kube-apiserver-healthcheck",
}  # fmt: skip


@dataclass
class Call:
    argv: list[str]
    stdin: str | None
    tty: bool
    kubeconfig_mode: int | None = None
    kubeconfig_text: str | None = None


@dataclass
class FakeRunner:
    """Records every command; `respond` scripts the result per command (default: success, no output)."""

    respond: Callable[[list[str]], Result] = lambda argv: Result(0)
    calls: list[Call] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None, tty: bool = False) -> Result:
        call = Call(list(argv), stdin, tty)
        if argv[0] == "kubectl":
            path = argv[2]
            call.kubeconfig_mode = stat.S_IMODE(os.stat(path).st_mode)
            with open(path) as handle:
                call.kubeconfig_text = handle.read()
        self.calls.append(call)
        if argv[:3] == ["pulumi", "stack", "output"]:
            return Result(0, KUBECONFIG_JSON + "\n")
        return self.respond(list(argv))

    def kubectl(self) -> list[Call]:
        return [c for c in self.calls if c.argv[0] == "kubectl"]

    def kubectl_args(self) -> list[list[str]]:
        """kubectl arguments after `--kubeconfig <path>`."""
        for call in self.kubectl():
            assert call.argv[1] == "--kubeconfig"
        return [c.argv[3:] for c in self.kubectl()]


def _run(args: list[str], runner: FakeRunner) -> tuple[int, str]:
    out = io.StringIO()
    code = main(args, runner=runner, out=out)
    return code, out.getvalue()


def test_kubeconfig_comes_from_the_stack_in_a_private_file_removed_afterwards() -> None:
    runner = FakeRunner()
    code, _ = _run(["--stack", "dev", "trigger", "admin-access"], runner)
    assert code == 0
    assert runner.calls[0].argv == ["pulumi", "stack", "output", "kubeconfig", "--show-secrets", "--stack", "dev"]
    kubectl = runner.kubectl()
    assert {c.kubeconfig_mode for c in kubectl} == {0o600}
    assert {c.kubeconfig_text for c in kubectl} == {KUBECONFIG_JSON + "\n"}
    assert not os.path.exists(kubectl[0].argv[2])


def test_explicit_kubeconfig_is_used_as_is_and_pulumi_is_not_called(tmp_path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG_JSON)
    runner = FakeRunner()
    code, _ = _run(["--kubeconfig", str(path), "cleanup"], runner)
    assert code == 0
    assert all(c.argv[0] == "kubectl" and c.argv[2] == str(path) for c in runner.calls)
    assert path.exists()


def test_missing_stack_output_is_a_clear_error(capsys) -> None:
    def pulumi_fails(argv: Sequence[str], *, stdin=None, tty=False) -> Result:
        return Result(255, "", "error: no stack selected")

    assert main(["alerts"], runner=pulumi_fails, out=io.StringIO()) == 1
    assert "--kubeconfig PATH" in capsys.readouterr().err


def test_pod_in_kube_system_creates_waits_and_deletes_the_pod() -> None:
    runner = FakeRunner()
    code, out = _run(["trigger", "pod-in-kube-system"], runner)
    assert code == 0
    assert runner.kubectl_args() == [
        ["create", "-f", "-"],
        ["wait", "--namespace", "kube-system", "--for=condition=Ready", "pod/falco-workshop-pod", "--timeout=180s"],
        ["delete", "pod", "falco-workshop-pod", "--namespace", "kube-system", "--ignore-not-found", "--wait=false"],
    ]
    pod = json.loads(runner.kubectl()[0].stdin or "")
    assert pod["kind"] == "Pod" and pod["metadata"]["namespace"] == "kube-system"
    (container,) = pod["spec"]["containers"]
    repository = container["image"].rsplit(":", 1)[0]
    assert repository == "public.ecr.aws/docker/library/busybox"
    assert repository not in ALLOWED_KUBE_NAMESPACE_IMAGES
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(container["resources"]) == {"requests", "limits"}
    assert 'expect the rule "Pod Created in Kube Namespace"' in out
    assert "CloudWatch" in out


def test_pod_is_deleted_even_when_waiting_fails(capsys) -> None:
    def wait_fails(argv: list[str]) -> Result:
        return Result(1, "", "timed out waiting for the condition") if argv[3] == "wait" else Result(0)

    runner = FakeRunner(respond=wait_fails)
    code, _ = _run(["trigger", "pod-in-kube-system"], runner)
    assert code == 1
    assert runner.kubectl_args()[-1][:3] == ["delete", "pod", "falco-workshop-pod"]
    assert "timed out waiting" in capsys.readouterr().err


def _aws_auth(exists: bool) -> Callable[[list[str]], Result]:
    def respond(argv: list[str]) -> Result:
        if argv[3:6] == ["get", "configmap", "aws-auth"]:
            return Result(0, "configmap/aws-auth\n" if exists else "")
        if argv[3] == "replace":
            return Result(
                1, "", 'Error from server (NotFound): error when replacing "STDIN": configmaps "aws-auth" not found'
            )
        return Result(0)

    return respond


def test_configmap_example_holds_aws_access_key_id_and_removes_its_namespace() -> None:
    runner = FakeRunner(respond=_aws_auth(exists=True))
    code, out = _run(["trigger", "configmap-aws-credentials"], runner)
    assert code == 0
    args = runner.kubectl_args()
    assert args[:3] == [
        ["apply", "-f", "-"],
        ["create", "-f", "-"],
        ["get", "configmap", "aws-credentials", "--namespace", "falco-workshop", "-o", "name"],
    ]
    assert args[-1] == ["delete", "namespace", "falco-workshop", "--ignore-not-found", "--timeout=180s"]
    namespace = json.loads(runner.kubectl()[0].stdin or "")
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["name"] == "falco-workshop"
    assert namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "falco-workshop"
    configmap = json.loads(runner.kubectl()[1].stdin or "")
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["namespace"] == "falco-workshop"
    assert configmap["data"]["aws_access_key_id"] == "AKIAIOSFODNN7EXAMPLE"
    assert "Create/Modify Configmap With Private Credentials" in out


def test_configmap_example_patches_existing_aws_auth_only_as_a_server_dry_run() -> None:
    runner = FakeRunner(respond=_aws_auth(exists=True))
    assert _run(["trigger", "configmap-aws-credentials"], runner)[0] == 0
    args = runner.kubectl_args()
    assert args[3] == ["get", "configmap", "aws-auth", "--namespace", "kube-system", "--ignore-not-found", "-o", "name"]
    patch = args[4]
    assert patch[:7] == [
        "patch",
        "configmap",
        "aws-auth",
        "--namespace",
        "kube-system",
        "--type=merge",
        "--dry-run=server",
    ]
    assert patch[7] == "-p"
    assert json.loads(patch[8])["data"]["aws_access_key_id"] == "AKIAIOSFODNN7EXAMPLE"
    assert not any(a[0] in ("patch", "replace", "apply", "create") and "--dry-run=server" not in a
                   and "kube-system" in a for a in args)  # fmt: skip


def test_configmap_example_without_aws_auth_sends_a_dry_run_replace_and_accepts_not_found() -> None:
    runner = FakeRunner(respond=_aws_auth(exists=False))
    code, _ = _run(["trigger", "configmap-aws-credentials"], runner)
    assert code == 0
    replace = runner.kubectl()[4]
    assert replace.argv[3:] == ["replace", "--dry-run=server", "-f", "-"]
    manifest = json.loads(replace.stdin or "")
    assert (manifest["metadata"]["namespace"], manifest["metadata"]["name"]) == ("kube-system", "aws-auth")
    assert "aws_access_key_id" in manifest["data"]


def test_namespace_is_removed_when_the_configmap_cannot_be_created(capsys) -> None:
    def create_fails(argv: list[str]) -> Result:
        return Result(1, "", 'configmaps "aws-credentials" already exists') if argv[3] == "create" else Result(0)

    runner = FakeRunner(respond=create_fails)
    code, _ = _run(["trigger", "configmap-aws-credentials"], runner)
    assert code == 1
    delete_namespace = ["delete", "namespace", "falco-workshop", "--ignore-not-found", "--timeout=180s"]
    assert runner.kubectl_args()[-1] == delete_namespace
    assert "already exists" in capsys.readouterr().err


def test_admin_access_shows_the_identity_and_acts_as_it() -> None:
    def whoami(argv: list[str]) -> Result:
        if argv[3:5] == ["auth", "whoami"]:
            return Result(0, "arn:aws:sts::123456789012:assumed-role/Admin/alice")
        return Result(0)

    runner = FakeRunner(respond=whoami)
    code, out = _run(["trigger", "admin-access"], runner)
    assert code == 0
    assert runner.kubectl_args() == [
        ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
        ["apply", "-f", "-"],
        ["delete", "namespace", "falco-workshop", "--ignore-not-found", "--timeout=180s"],
    ]
    assert "arn:aws:sts::123456789012:assumed-role/Admin/alice" in out


def test_terminal_shell_execs_a_shell_under_a_pseudo_terminal_then_cleans_up() -> None:
    def exec_output(argv: list[str]) -> Result:
        return (
            Result(0, "Falco workshop: shell with a terminal in a container\nuid=65534 gid=65534\n")
            if argv[3] == "exec"
            else Result(0)
        )

    runner = FakeRunner(respond=exec_output)
    code, out = _run(["trigger", "terminal-shell"], runner)
    assert code == 0
    args = runner.kubectl_args()
    assert args[0] == ["apply", "-f", "-"]
    assert args[1] == ["create", "-f", "-"]
    assert args[2][:4] == ["wait", "--namespace", "falco-workshop", "--for=condition=Ready"]
    exec_call = runner.kubectl()[3]
    # Under a pseudo-terminal, so kubectl asks the container for a TTY (the rule's proc.tty != 0).
    assert exec_call.tty
    assert exec_call.argv[3:9] == ["exec", "-it", "--namespace", "falco-workshop", "falco-workshop-shell", "--"]
    assert exec_call.argv[9] == "sh"  # a shell_procs binary
    assert args[-1][:3] == ["delete", "namespace", "falco-workshop"]
    pod = json.loads(runner.kubectl()[1].stdin or "")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "    uid=65534 gid=65534" in out
    assert "Terminal shell in container" in out


def test_terminal_shell_reports_a_failed_exec_and_still_cleans_up(capsys) -> None:
    def exec_fails(argv: list[str]) -> Result:
        return (
            Result(1, "error: unable to upgrade connection: container not found\n") if argv[3] == "exec" else Result(0)
        )

    runner = FakeRunner(respond=exec_fails)
    code, _ = _run(["trigger", "terminal-shell"], runner)
    assert code == 1
    assert runner.kubectl_args()[-1][:3] == ["delete", "namespace", "falco-workshop"]
    assert "unable to upgrade connection" in capsys.readouterr().err


def test_cleanup_removes_labelled_objects_and_reports_failure() -> None:
    runner = FakeRunner()
    code, _ = _run(["cleanup"], runner)
    assert code == 0
    label = "app.kubernetes.io/managed-by=falco-workshop"
    assert runner.kubectl_args() == [
        ["delete", "pod", "--namespace", "kube-system", "-l", label, "--ignore-not-found"],
        ["delete", "namespace", "-l", label, "--ignore-not-found", "--timeout=180s"],
    ]
    failing = FakeRunner(respond=lambda argv: Result(1, "", "forbidden"))
    assert _run(["cleanup"], failing)[0] == 1


# Lines as `kubectl logs --prefix` prints them from Falco 0.44 pods with json_output on.
AUDIT_POD = "falco-k8saudit-6c8d9f7b5d-q2x8z"
SYSCALL_POD = "falco-7kq9w"
POD_ALERT = {
    "hostname": AUDIT_POD,
    "output": "14:03:11.187654000: Warning Pod created in kube namespace "
    "(user=arn:aws:sts::123456789012:assumed-role/Admin/alice "
    "pod=falco-workshop-pod resource=pods ns=kube-system images=public.ecr.aws/docker/library/busybox:1.36.1)",
    "output_fields": {
        "evt.time": 1795702991187654000,
        "ka.req.pod.containers.image": ["public.ecr.aws/docker/library/busybox:1.36.1"],
        "ka.resp.name": "falco-workshop-pod",
        "ka.target.namespace": "kube-system",
        "ka.target.resource": "pods",
        "ka.user.name": "arn:aws:sts::123456789012:assumed-role/Admin/alice",
    },
    "priority": "Warning",
    "rule": "Pod Created in Kube Namespace",
    "source": "k8s_audit",
    "tags": ["k8s"],
    "time": "2026-11-26T14:03:11.187654000Z",
}
SHELL_ALERT = {
    "hostname": "ip-10-0-1-23.us-west-2.compute.internal",
    "output": "14:01:02.554433221: Notice A shell was spawned in a container with an attached terminal "
    "(evt_type=execve user=<NA> user_uid=65534 user_loginuid=-1 process=sh proc_exepath=/bin/sh parent=runc "
    "command=sh -c echo 'Falco workshop: shell with a terminal in a container'; id terminal=34816 "
    "exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER container_id=4f1c2d3e4a5b container_name=demo "
    "container_image_repository=public.ecr.aws/docker/library/busybox container_image_tag=1.36.1 "
    "k8s_pod_name=falco-workshop-shell k8s_ns_name=falco-workshop)",
    "output_fields": {
        "container.id": "4f1c2d3e4a5b",
        "evt.type": "execve",
        "proc.name": "sh",
        "proc.tty": 34816,
        "user.uid": 65534,
    },
    "priority": "Notice",
    "rule": "Terminal shell in container",
    "source": "syscall",
    "tags": ["T1059", "container", "maturity_stable", "mitre_execution", "shell"],
    "time": "2026-11-26T14:01:02.554433221Z",
}
FALCO_LOG = [
    f"[pod/{AUDIT_POD}/falco] Thu Nov 26 14:00:01 2026: Falco version: 0.44.1 (x86_64)",
    f"[pod/{AUDIT_POD}/falco] Thu Nov 26 14:00:01 2026: Loading rules from:",
    f"[pod/{AUDIT_POD}/falco] Thu Nov 26 14:00:01 2026:    /etc/falco/k8s_audit_rules.yaml | schema validation: ok",
    f"[pod/{AUDIT_POD}/falco] {json.dumps(POD_ALERT)}",
    f"[pod/{SYSCALL_POD}/falco] Thu Nov 26 14:00:03 2026: Opening 'syscall' source with modern BPF probe.",
    f"[pod/{SYSCALL_POD}/falco] {json.dumps(SHELL_ALERT)}",
    # Falco's own metrics snapshot (the audit release writes one a minute): not an alert.
    f'[pod/{AUDIT_POD}/falco] {{"hostname":"{AUDIT_POD}","output":"Falco metrics snapshot","output_fields":'
    '{"evt.source":"k8s_audit","falco.num_evts":1800},"priority":"Informational",'
    '"rule":"Falco internal: metrics snapshot","source":"internal","time":"2026-11-26T14:04:00.000000000Z"}',
    f'[pod/{SYSCALL_POD}/falco] {{"truncated": ',
]


def test_parse_keeps_only_alerts_sorted_by_time() -> None:
    alerts = parse_lines(FALCO_LOG)
    assert [a.rule for a in alerts] == ["Terminal shell in container", "Pod Created in Kube Namespace"]
    shell, pod = alerts
    assert (shell.priority, shell.source, shell.pod) == ("Notice", "syscall", SYSCALL_POD)
    assert (pod.priority, pod.source, pod.pod) == ("Warning", "k8s_audit", AUDIT_POD)
    assert pod.time == "2026-11-26T14:03:11.187654000Z"
    assert pod.message.startswith("Pod created in kube namespace (user=arn:aws:sts::123456789012:assumed-role/Admin/")


def test_parse_text_output_line() -> None:
    line = (
        "2026-11-26T14:05:00.000000000+0000: Warning K8s configmap with private credential "
        "(user=kubernetes-admin verb=create resource=configmaps configmap=aws-credentials config={...})"
    )
    alert = parse_line(line)
    assert alert is not None
    assert (alert.priority, alert.rule) == ("Warning", None)
    assert alert.message.startswith("K8s configmap with private credential")
    assert parse_line("Thu Nov 26 14:00:01 2026: Falco initialized with configuration files:") is None
    assert parse_line('{"rule": "x"}') is None


def test_alerts_reads_both_releases_and_points_to_the_ui() -> None:
    def respond(argv: list[str]) -> Result:
        if argv[3] == "logs":
            return Result(0, "\n".join(FALCO_LOG) + "\n")
        if argv[3:5] == ["get", "services"]:
            return Result(0, "service/falco-falcosidekick-ui\n")
        return Result(1, "", "unexpected")

    runner = FakeRunner(respond=respond)
    code, out = _run(["alerts", "--since", "15m"], runner)
    assert code == 0
    logs, services = runner.kubectl_args()
    assert logs == [
        "logs", "--namespace", "falco", "-l", "app.kubernetes.io/name=falco", "-c", "falco",
        "--since=15m", "--prefix", "--tail=-1", "--max-log-requests=50",
    ]  # fmt: skip
    assert services == [
        "get", "services", "--namespace", "falco", "-l",
        "app.kubernetes.io/name=falcosidekick,app.kubernetes.io/component=ui", "-o", "name",
    ]  # fmt: skip
    lines = out.splitlines()
    first = "2026-11-26T14:01:02.554433221Z  Notice   Terminal shell in container  [syscall falco-7kq9w]"
    assert lines[0] == first
    assert "Pod Created in Kube Namespace  [k8s_audit falco-k8saudit-6c8d9f7b5d-q2x8z]" in out
    assert "2 alert(s) in the last 15m." in out
    assert "kubectl -n falco port-forward service/falco-falcosidekick-ui 2802:2802" in out


def test_alerts_rule_filter_and_no_ui_hint_without_sidekick() -> None:
    def respond(argv: list[str]) -> Result:
        return Result(0, "\n".join(FALCO_LOG)) if argv[3] == "logs" else Result(0, "")

    code, out = _run(["alerts", "--rule", "kube namespace"], FakeRunner(respond=respond))
    assert code == 0
    assert "Pod Created in Kube Namespace" in out and "Terminal shell" not in out
    assert "port-forward" not in out


def test_bad_since_fails_before_touching_the_cluster(capsys) -> None:
    runner = FakeRunner()
    code, _ = _run(["alerts", "--since", "ten minutes"], runner)
    assert code == 1
    assert runner.calls == []
    assert "--since" in capsys.readouterr().err


def test_list_names_every_example_and_its_rule() -> None:
    code, out = _run(["list"], FakeRunner())
    assert code == 0
    for name, rule in [
        ("pod-in-kube-system", "Pod Created in Kube Namespace"),
        ("configmap-aws-credentials", "Create/Modify Configmap With Private Credentials"),
        ("admin-access", "Full K8s Administrative Access"),
        ("terminal-shell", "Terminal shell in container"),
    ]:
        assert name in out and rule in out
