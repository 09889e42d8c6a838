"""`make up` / `make down` / `make config` as a user runs them: the real commands with stand-in CLIs.

Each test runs `python -m labctl` (and `make down` and `make config` themselves once) in a child process
whose PATH holds only the stand-ins (tests/support/standin_cli.py: they record every argument list with the
backend and passphrase it ran with, keep the stacks in one backend, check passphrases, and fail on command),
with AWS pointed at moto in server mode for the log group clean-up. `make config` and `make stack` are in
test_labctl_config.py.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from support.moto_server import MotoServer, moto, moto_server  # noqa: F401  (pytest fixtures)
from support.standin_cli import LOG_GROUP_TYPE, StandIns

from labctl.commands import next_steps
from labctl.stack import Project, StackSettings

ROOT = Path(__file__).resolve().parents[1]
CLOUD = "https://api.pulumi.com"
DEV_GROUP = "/aws/eks/falco-eks-lab-dev/cluster"
OUR_TAGS = {"pulumi:project": "falco-eks-lab", "pulumi:stack": "dev"}


def deployed(stack: str = "dev", group: str = DEV_GROUP, cluster: str = "falco-eks-lab-dev") -> dict:
    """A stack the stand-in pulumi knows as up: region set, outputs, the log group in its state."""
    return {
        stack: {
            "config": {"aws:region": "us-west-2"},
            "outputs": {"clusterName": cluster, "auditLogGroupName": group},
            "resources": [{"type": LOG_GROUP_TYPE, "id": group}],
        }
    }


class Lab:
    """A project folder, the stand-ins, moto: runs labctl the way the Makefile does."""

    def __init__(self, root: Path, moto: MotoServer) -> None:  # noqa: F811
        self.project = root / "project"
        self.project.mkdir()
        # The lab's own Pulumi.yaml: its config block is what `make config` checks keys and types against.
        (self.project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        self.cli = StandIns(root / "bin")
        self.moto = moto
        self.logs = moto.client("logs")

    def settings(self, stack: str = "dev", **values: object) -> None:
        config = {(k if ":" in k else f"falco-eks-lab:{k}"): v for k, v in values.items()}
        (self.project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))

    def env(self, **extra: str) -> dict[str, str]:
        env = self.moto.env()
        env.update(
            PATH=str(self.cli.folder),
            PYTHONPATH=str(ROOT),
            LOG_GROUP_QUIET_SECONDS="0.3",
            LOG_GROUP_MAX_WAIT_SECONDS="20",
        )
        env.update(extra)
        return env

    def run(self, command: str, *args: str, stack: str = "dev", **extra: str) -> subprocess.CompletedProcess[str]:
        """`python -m labctl COMMAND --stack STACK --project-dir ... ARGS` with ``extra`` in its environment."""
        argv = [sys.executable, "-m", "labctl", command, "--stack", stack, "--project-dir", str(self.project), *args]
        return subprocess.run(argv, cwd=ROOT, env=self.env(**extra), capture_output=True, text=True, timeout=120)

    def make(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`make ARGS` in the repository, with the stand-ins first on PATH and then the system's make and bash."""
        system = os.pathsep.join(
            sorted({str(Path(shutil.which(tool) or "/usr/bin/x").parent) for tool in ("make", "bash")})
        )
        env = self.env(PATH=os.pathsep.join([str(self.cli.folder), system]))
        argv = ["make", "--no-print-directory", "-C", str(ROOT), *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)

    def group_exists(self, name: str = DEV_GROUP) -> bool:
        return any(
            g["logGroupName"] == name for g in self.logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        )


@pytest.fixture
def lab(tmp_path: Path, moto: MotoServer) -> Lab:  # noqa: F811
    return Lab(tmp_path, moto)


def pulumi_calls(lab: Lab, verb: str) -> list[list[str]]:
    return [call[1:] for call in lab.cli.calls("pulumi") if call[1] == verb]


# --- make down ---------------------------------------------------------------------------------------------


def test_down_with_empty_flags_destroys_removes_the_revived_log_group_and_then_the_stack(lab):
    lab.cli.install(backend=CLOUD, stacks=deployed())
    lab.logs.create_log_group(logGroupName=DEV_GROUP)  # what EKS recreates, untagged, after the cluster
    done = lab.run("down", PULUMI_FLAGS="")
    assert done.returncode == 0, done.stderr
    calls = [call[1:] for call in lab.cli.calls("pulumi")]
    assert ["destroy", "--stack", "dev"] in calls  # nothing appended for the empty flags, not even ""
    assert calls.index(["destroy", "--stack", "dev"]) < calls.index(
        ["stack", "rm", "dev", "--yes", "--preserve-config"]
    )
    assert not lab.group_exists()
    assert "dev" not in lab.cli.state["stacks"]
    assert "Deleted /aws/eks/falco-eks-lab-dev/cluster: EKS had recreated it" in done.stdout
    assert "has stayed gone for" in done.stdout


@pytest.mark.parametrize("command", ["up", "down"])
def test_flags_with_spaces_and_quotes_reach_pulumi_as_separate_arguments(lab, command):
    lab.cli.install(backend=CLOUD, stacks=deployed())
    done = lab.run(command, PULUMI_FLAGS='--yes --message "two words" --target-dependents  --diff')
    assert done.returncode == 0, done.stderr
    verb = "up" if command == "up" else "destroy"
    assert pulumi_calls(lab, verb) == [
        [verb, "--stack", "dev", "--yes", "--message", "two words", "--target-dependents", "--diff"]
    ]


def test_flags_with_an_unclosed_quote_are_refused_before_anything_runs(lab):
    lab.cli.install(backend=CLOUD, stacks=deployed())
    done = lab.run("down", PULUMI_FLAGS='--message "oops')
    assert done.returncode == 2
    assert "PULUMI_FLAGS" in done.stderr
    assert lab.cli.calls() == []


def test_failed_destroy_keeps_the_stack_and_says_so(lab):
    lab.cli.install(backend=CLOUD, stacks=deployed(), fail=["pulumi destroy"])
    lab.logs.create_log_group(logGroupName=DEV_GROUP, tags=OUR_TAGS)
    done = lab.run("down")
    assert done.returncode == 1
    assert "'pulumi destroy' failed (exit code 1)" in done.stderr
    assert "was not removed" in done.stderr and "run 'make down' again" in done.stderr
    assert not any(call[:2] == ["stack", "rm"] for call in pulumi_calls(lab, "stack"))
    assert "dev" in lab.cli.state["stacks"]
    assert lab.group_exists()  # the clean-up never ran


def test_interrupted_down_is_finished_by_running_it_again(lab):
    lab.cli.install(backend=CLOUD, stacks=deployed(), fail=["pulumi destroy"])
    assert lab.run("down").returncode == 1
    # The user fixes the cause; destroy now works, and EKS has recreated the group meanwhile.
    state = lab.cli.state
    lab.cli.install(backend=CLOUD, stacks=state["stacks"])
    lab.logs.create_log_group(logGroupName=DEV_GROUP)
    done = lab.run("down")
    assert done.returncode == 0, done.stderr
    assert not lab.group_exists()
    assert "dev" not in lab.cli.state["stacks"]


def test_down_of_a_stack_that_is_not_there_does_nothing(lab):
    lab.cli.install(backend=CLOUD, stacks={})
    done = lab.run("down", stack="qa")
    assert done.returncode == 0, done.stderr
    assert "No stack qa" in done.stdout
    assert pulumi_calls(lab, "destroy") == []


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_down_with_empty_flags_really_calls_pulumi_destroy(lab):
    stack = f"t{uuid.uuid4().hex[:8]}"  # the Makefile works in the repository: a stack name no file uses
    group = f"/aws/eks/falco-eks-lab-{stack}/cluster"
    lab.cli.install(backend=CLOUD, stacks=deployed(stack, group, f"falco-eks-lab-{stack}"))
    done = lab.make("down", f"STACK={stack}")  # PULUMI_FLAGS not set: the Makefile's empty default
    assert done.returncode == 0, done.stdout + done.stderr
    assert ["destroy", "--stack", stack] in pulumi_calls(lab, "destroy")
    assert ["stack", "rm", stack, "--yes", "--preserve-config"] in pulumi_calls(lab, "stack")


# --- make up -----------------------------------------------------------------------------------------------


def test_up_removes_what_an_earlier_cluster_of_this_stack_left_then_runs_pulumi_up(lab):
    lab.cli.install(backend=CLOUD, stacks={})
    lab.settings(forwarderBuild="source")
    lab.logs.create_log_group(logGroupName=DEV_GROUP)  # untagged: EKS recreated it after the last down
    done = lab.run("up")
    assert done.returncode == 0, done.stderr
    assert not lab.group_exists()
    assert "Removing log group /aws/eks/falco-eks-lab-dev/cluster" in done.stdout
    calls = [call[1:] for call in lab.cli.calls("pulumi")]
    assert ["stack", "select", "--create", "dev"] in calls
    assert ["config", "set", "--stack", "dev", "--", "aws:region", "us-west-2"] in calls  # from AWS_REGION
    assert calls[-1] == ["up", "--stack", "dev"]
    assert lab.cli.calls("docker") == []  # forwarderBuild=source needs no Docker
    # Next steps, with how to narrow the API endpoint from 0.0.0.0/0.
    assert "aws eks update-kubeconfig --region us-west-2 --name falco-eks-lab-dev" in done.stdout
    assert "make config KEY='apiPublicAccessCidrs[0]' VALUE=\"$(curl" in done.stdout


def test_up_never_touches_a_log_group_another_stack_owns(lab):
    lab.cli.install(backend=CLOUD, stacks={})
    lab.settings(clusterName="workshop", forwarderBuild="source")
    group = "/aws/eks/workshop/cluster"
    lab.logs.create_log_group(logGroupName=group, tags={"pulumi:project": "falco-eks-lab", "pulumi:stack": "qa"})
    done = lab.run("up")
    assert done.returncode == 1
    assert "belongs to stack falco-eks-lab/qa" in done.stderr
    assert "make config KEY=clusterName VALUE=<another name>" in done.stderr
    assert lab.group_exists(group)
    assert pulumi_calls(lab, "up") == []


def test_up_of_a_running_lab_leaves_its_own_log_group_to_pulumi(lab):
    lab.cli.install(backend=CLOUD, stacks=deployed())
    lab.settings(forwarderBuild="source")
    lab.logs.create_log_group(logGroupName=DEV_GROUP, tags=OUR_TAGS)
    done = lab.run("up")
    assert done.returncode == 0, done.stderr
    assert lab.group_exists()
    assert "Removing" not in done.stdout


def test_up_warns_before_a_new_cluster_name_would_replace_the_running_cluster(lab):
    # A stack deployed while the default name was still "falco-lab" (no clusterName in its settings).
    lab.cli.install(backend=CLOUD, stacks=deployed(group="/aws/eks/falco-lab/cluster", cluster="falco-lab"))
    lab.settings(forwarderBuild="source")
    done = lab.run("up")
    assert done.returncode == 0, done.stderr
    assert "this stack's cluster is falco-lab, but its settings now name falco-eks-lab-dev" in done.stdout
    assert "make config KEY=clusterName VALUE=falco-lab" in done.stdout


def test_failed_up_says_how_to_go_on(lab):
    lab.cli.install(backend=CLOUD, stacks={}, fail=["pulumi up"])
    lab.settings(stack="qa", forwarderBuild="source")
    done = lab.run("up", stack="qa")
    assert done.returncode == 1
    assert "'pulumi up' failed (exit code 1)" in done.stderr
    assert "run 'make up STACK=qa' again, or 'make down STACK=qa'" in done.stderr


def test_missing_prerequisites_are_all_named_at_once_before_anything_runs(lab):
    lab.cli.install(programs=("aws", "docker"), backend=CLOUD, fail=["aws sts get-caller-identity", "docker info"])
    done = lab.run("up")  # forwarderBuild defaults to docker
    assert done.returncode == 3
    assert "missing for 'make up':" in done.stderr
    for item in ("Pulumi CLI", "AWS credentials: 'aws sts get-caller-identity' failed", "a running Docker engine"):
        assert item in done.stderr
    assert "fails on command: aws sts get-caller-identity" in done.stderr  # the CLI's own reason, passed on
    assert [call[:2] for call in lab.cli.calls()] == [["aws", "sts"], ["docker", "info"]]


def test_nothing_installed_names_every_tool(lab):
    lab.cli.install(programs=())
    done = lab.run("down")
    assert done.returncode == 3
    assert "Pulumi CLI" in done.stderr and "AWS CLI v2" in done.stderr
    assert "Docker" not in done.stderr  # `down` builds nothing


def test_local_backend_gets_a_private_passphrase_that_down_reuses_without_any_login(lab):
    lab.cli.install(backend=None, stacks={})
    lab.settings(forwarderBuild="source")
    up = lab.run("up")
    assert up.returncode == 0, up.stderr
    state = lab.project / ".pulumi-state"
    assert lab.cli.state["stacks_backend"] == f"file://{state}"
    assert lab.cli.state.get("backend") is None  # the machine's Pulumi login is untouched
    passphrase = state / "passphrase-dev"
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600
    assert len(passphrase.read_text().strip()) >= 32
    assert f"export PULUMI_CONFIG_PASSPHRASE_FILE={passphrase}" in up.stdout
    assert f"export PULUMI_BACKEND_URL=file://{state}" in up.stdout
    down = lab.run("down")
    assert down.returncode == 0, down.stderr
    # Only up's first question (whoami: is there a login?) ran without the backend and the passphrase.
    entries = lab.cli.entries()
    assert [e["argv"][1:] for e in entries if e["backend_url"] is None] == [["whoami", "--verbose"]]
    assert {e["backend_url"] for e in entries[1:]} == {f"file://{state}"}
    assert lab.cli.passphrase_files() == {None, str(passphrase)}
    assert not any(e["argv"][1] == "login" for e in entries)
    assert pulumi_calls(lab, "destroy") == [["destroy", "--stack", "dev"]]


def test_up_keeps_the_users_login_and_passes_it_to_every_command(lab):
    lab.cli.install(backend=CLOUD, stacks={})
    lab.settings(forwarderBuild="source")
    done = lab.run("up")
    assert done.returncode == 0, done.stderr
    entries = lab.cli.entries()
    assert entries[0]["argv"][1:] == ["whoami", "--verbose"] and entries[0]["backend_url"] is None
    assert {e["backend_url"] for e in entries[1:]} == {CLOUD}
    assert not (lab.project / ".pulumi-state").exists()
    assert "PULUMI_BACKEND_URL" not in done.stdout  # nothing for the user to export: their login reaches it


def test_an_earlier_global_login_to_this_clone_is_kept_as_the_clones_own_backend(lab):
    """What the lab's earlier `pulumi login file://<clone>/.pulumi-state` left: the stacks stay there."""
    state = lab.project / ".pulumi-state"
    lab.cli.install(backend=f"file://{state}", stacks={})
    lab.settings(forwarderBuild="source")
    assert lab.run("up").returncode == 0
    assert (state / "local-backend").is_file()
    # The user logs in elsewhere afterwards: the lab's stacks are still found where they are.
    lab.cli.install(backend=CLOUD, stacks=lab.cli.state["stacks"], stacks_backend=f"file://{state}")
    down = lab.run("down")
    assert down.returncode == 0, down.stderr
    assert pulumi_calls(lab, "destroy") == [["destroy", "--stack", "dev"]]
    assert pulumi_calls(lab, "whoami") == []


def test_down_without_the_passphrase_it_was_created_with_stops(lab):
    lab.cli.install(backend="file:///somewhere", stacks=deployed())
    done = lab.run("down")
    assert done.returncode == 2
    assert "PULUMI_CONFIG_PASSPHRASE" in done.stderr
    assert pulumi_calls(lab, "destroy") == []


def test_up_without_any_region_says_how_to_set_one(lab):
    lab.cli.install(backend=CLOUD, stacks={})
    lab.settings(forwarderBuild="source")
    done = lab.run("up", AWS_REGION="", AWS_DEFAULT_REGION="")
    assert done.returncode == 2
    assert "make config KEY=aws:region VALUE=us-west-2" in done.stderr
    assert pulumi_calls(lab, "up") == []


def test_bad_wait_settings_are_refused_by_name(lab):
    lab.cli.install(backend=CLOUD, stacks=deployed())
    done = lab.run("down", LOG_GROUP_QUIET_SECONDS="ten")
    assert done.returncode == 2 and "LOG_GROUP_QUIET_SECONDS" in done.stderr
    done = lab.run("down", LOG_GROUP_QUIET_SECONDS="600", LOG_GROUP_MAX_WAIT_SECONDS="60")
    assert done.returncode == 2 and "LOG_GROUP_MAX_WAIT_SECONDS" in done.stderr
    assert lab.cli.calls() == []


# --- the next steps ------------------------------------------------------------------------------------------


def steps(tmp_path: Path, **values: object) -> str:
    project = Project(tmp_path, "falco-eks-lab")
    (tmp_path / "Pulumi.qa.yaml").write_text(
        yaml.safe_dump({"config": {f"falco-eks-lab:{k}": v for k, v in values.items()}})
    )
    return next_steps(StackSettings.read(project, "qa"), "eu-west-1", {})


def test_next_steps_say_how_to_narrow_an_endpoint_open_to_all(tmp_path):
    text = steps(tmp_path)
    assert "accepts connections from any address" in text
    assert "--stack qa" in text and "make up STACK=qa" in text and "make down STACK=qa" in text
    narrow = "make config KEY='apiPublicAccessCidrs[0]' VALUE=\"$(curl -fsS https://checkip.amazonaws.com)/32\""
    assert f"{narrow} STACK=qa" in text
    assert "aws eks update-kubeconfig --region eu-west-1 --name falco-eks-lab-qa" in text


@pytest.mark.parametrize(
    "values",
    [
        {"apiPublicAccessCidrs": ["203.0.113.7/32"]},
        {"apiPublicAccessCidrs": '["203.0.113.7/32"]'},  # as `pulumi config set` stores JSON text
        {"apiPrivateOnly": True, "apiPrivateAccessCidrs": ["10.0.0.0/8"]},
    ],
)
def test_next_steps_stay_quiet_about_an_endpoint_already_narrowed(tmp_path, values):
    assert "any address" not in steps(tmp_path, **values)


# --- portability of the Makefile -----------------------------------------------------------------------------

# What GNU make 3.81 (macOS) lacks, what bash 3.2 lacks, and GNU-only tool options BSD's lack.
NEWER_THAN_MAKE_381 = [
    r"^\.ONESHELL",
    r"^\.RECIPEPREFIX",
    r"\$\(file ",
    r"^\S+\s*!=",
    r"::=",
    r"\$\(guile ",
    r"\$\(let ",
    r"\$\(intcmp ",
    r"^undefine ",
    r"^private ",
    r"^\.SHELLFLAGS",
]
NEWER_THAN_BASH_32 = [r"\bmapfile\b", r"\breadarray\b", r"declare -A", r"\$\{\w+,,\}", r"\$\{\w+\^\^\}", r"\|&", r"&>>"]
GNU_ONLY = [r"\bsed -i\b", r"readlink -f", r"\bdate -d\b", r"mktemp --", r"grep -P", r"\bstat -c\b"]


def test_makefile_needs_nothing_newer_than_gnu_make_381_and_bash_32():
    text = (ROOT / "Makefile").read_text()
    recipes = "\n".join(line for line in text.splitlines() if line.startswith("\t"))
    found = [p for p in NEWER_THAN_MAKE_381 if re.search(p, text, re.MULTILINE)]
    found += [p for p in NEWER_THAN_BASH_32 + GNU_ONLY if re.search(p, recipes)]
    assert found == []
    # The lab's commands are one line each: labctl does the work, in Python.
    for target in ("up", "down", "config", "stack", "env"):
        recipe = re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.MULTILINE)
        assert recipe is not None
        assert recipe[1].strip() == f'@$(BIN)/python -m labctl {target} --stack "$(STACK)"'
