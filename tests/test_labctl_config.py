"""`make config`, `make stack` and `make env`: settings before the first `make up`, from a fresh clone.

The commands run as a user runs them (`python -m labctl`, and `make config` itself once) in a child process
whose PATH holds only the stand-in CLIs of tests/support/standin_cli.py, which keep the stacks in one backend,
check each stack's secrets passphrase, and write Pulumi.<stack>.yaml as the real `pulumi config set` does.
"""

# ruff: noqa: F811 - the lab fixture imported from test_labctl is a parameter here by design

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from support.moto_server import moto, moto_server  # noqa: F401  (pytest fixtures)
from support.standin_cli import StandIns

from tests.test_labctl import CLOUD, ROOT, Lab, lab, pulumi_calls  # noqa: F401  (lab: a pytest fixture)

LOCAL = "file://{state}"


def config(lab: Lab, key: str, value: str | None, stack: str = "dev", **extra: str) -> subprocess.CompletedProcess[str]:
    """`make config KEY=... VALUE=...` as make runs it: the two reach labctl in the environment."""
    values = {"KEY": key} if value is None else {"KEY": key, "VALUE": value}
    return lab.run("config", stack=stack, **values, **extra)


def stack_file(lab: Lab, stack: str = "dev") -> dict:
    return yaml.safe_load((lab.project / f"Pulumi.{stack}.yaml").read_text())["config"]


def local_backend(lab: Lab) -> str:
    return LOCAL.format(state=lab.project / ".pulumi-state")


# --- before the first make up -------------------------------------------------------------------------------


def test_config_on_a_fresh_clone_makes_the_stack_that_up_then_uses_with_the_same_backend_and_passphrase(lab):
    lab.cli.install(programs=("pulumi", "aws"), backend=None)  # no login, no Docker
    assert not (lab.project / ".pulumi-state").exists()
    done = config(lab, "forwarderBuild", "source")
    assert done.returncode == 0, done.stderr
    assert "Set falco-eks-lab:forwarderBuild = source in stack dev (Pulumi.dev.yaml)" in done.stdout
    assert stack_file(lab)["falco-eks-lab:forwarderBuild"] == "source"
    state = lab.project / ".pulumi-state"
    assert (state / "local-backend").is_file() and (state / "passphrase-dev").is_file()
    assert lab.cli.state["stacks_backend"] == local_backend(lab)

    up = lab.run("up")  # reads forwarderBuild=source from the stack file: Docker is not needed
    assert up.returncode == 0, up.stdout + up.stderr
    assert pulumi_calls(lab, "up") == [["up", "--stack", "dev"]]
    entries = lab.cli.entries()
    # Only config's first question (is there a login?) ran without a backend; up asked nothing of the kind.
    assert [e["argv"][1:] for e in entries if e["backend_url"] is None] == [["whoami", "--verbose"]]
    assert {e["backend_url"] for e in entries[1:]} == {local_backend(lab)}
    # The same generated passphrase on every call that reads or writes the stack (the stand-in refuses any
    # other); only the looks for the stack (`stack select` without --create) come before it is chosen.
    uses = [e for e in entries[1:] if e["argv"][1:3] != ["stack", "select"] or "--create" in e["argv"]]
    assert {e["passphrase_file"] for e in uses} == {str(state / "passphrase-dev")}
    assert not any(e["argv"][1] == "login" for e in entries)
    assert lab.cli.state.get("backend") is None


def test_config_keeps_the_users_login_and_changes_nothing_else_on_the_machine(lab):
    lab.cli.install(backend=CLOUD)
    done = config(lab, "nodeCount", "3")
    assert done.returncode == 0, done.stderr
    assert lab.cli.state["backend"] == CLOUD and lab.cli.state["stacks_backend"] == CLOUD
    assert {e["backend_url"] for e in lab.cli.entries()[1:]} == {CLOUD}
    assert not (lab.project / ".pulumi-state").exists()
    assert stack_file(lab)["falco-eks-lab:nodeCount"] == "3"
    assert [call[1:] for call in lab.cli.calls()] == [
        ["whoami", "--verbose"],
        ["stack", "select", "dev"],
        ["stack", "select", "--create", "dev"],
        ["config", "set", "--stack", "dev", "--", "nodeCount", "3"],
    ]


def test_config_follows_the_users_own_backend_url_without_asking_for_a_login(lab):
    elsewhere = "file:///var/lab-states"
    lab.cli.install(backend=None)
    done = config(lab, "aws:region", "eu-west-1", PULUMI_BACKEND_URL=elsewhere, PULUMI_CONFIG_PASSPHRASE="theirs")
    assert done.returncode == 0, done.stderr
    assert pulumi_calls(lab, "whoami") == []
    assert {e["backend_url"] for e in lab.cli.entries()} == {elsewhere}
    assert not (lab.project / ".pulumi-state" / "passphrase-dev").exists()  # theirs is used
    assert stack_file(lab)["aws:region"] == "eu-west-1"


def test_a_whole_list_is_set_item_by_item_and_replaces_the_old_one(lab):
    lab.cli.install(backend=CLOUD)
    assert config(lab, "apiPublicAccessCidrs", '["203.0.113.7/32", "198.51.100.0/24", "192.0.2.1/32"]').returncode == 0
    done = config(lab, "apiPublicAccessCidrs", '["203.0.113.8/32"]')
    assert done.returncode == 0, done.stderr
    # A list stored as text would fail Pulumi.yaml's `type: array` at pulumi up: items go in with --path.
    assert stack_file(lab)["falco-eks-lab:apiPublicAccessCidrs"] == ["203.0.113.8/32"]
    assert ["config", "rm", "--stack", "dev", "--", "apiPublicAccessCidrs"] in pulumi_calls(lab, "config")


def test_one_item_of_a_list_by_its_path(lab):
    lab.cli.install(backend=CLOUD)
    assert config(lab, "extraLogTypes[0]", "api").returncode == 0
    done = config(lab, "extraLogTypes[1]", "scheduler")
    assert done.returncode == 0, done.stderr
    assert stack_file(lab)["falco-eks-lab:extraLogTypes"] == ["api", "scheduler"]
    assert ["config", "set", "--path", "--stack", "dev", "--", "extraLogTypes[1]", "scheduler"] in pulumi_calls(
        lab, "config"
    )


def test_config_takes_key_and_value_as_arguments_too(lab):
    lab.cli.install(backend=CLOUD)
    done = lab.run("config", "falcoSidekickUi", "False", stack="qa")
    assert done.returncode == 0, done.stderr
    assert stack_file(lab, "qa")["falco-eks-lab:falcoSidekickUi"] == "false"
    assert "'make up STACK=qa' applies it." in done.stdout


def test_a_value_starting_with_a_dash_reaches_pulumi_as_the_value(lab):
    lab.cli.install(backend=CLOUD)
    done = config(lab, "aws:profile", "-odd-profile-name")
    assert done.returncode == 0, done.stderr
    assert stack_file(lab)["aws:profile"] == "-odd-profile-name"


def test_stack_prepares_what_up_will_use_and_prints_the_env_for_the_users_own_pulumi(lab):
    lab.cli.install(programs=("pulumi",), backend=None)
    done = lab.run("stack", stack="qa")
    assert done.returncode == 0, done.stderr
    state = lab.project / ".pulumi-state"
    assert f"export PULUMI_BACKEND_URL=file://{state}" in done.stdout
    assert f"export PULUMI_CONFIG_PASSPHRASE_FILE={state / 'passphrase-qa'}" in done.stdout
    assert "pulumi config set <key> <value> --stack qa" in done.stdout
    assert "qa" in lab.cli.state["stacks"]
    # `make env` prints the same exports and makes nothing, runs nothing.
    calls_before = len(lab.cli.calls())
    env = lab.run("env", stack="qa")
    assert env.returncode == 0, env.stderr
    assert env.stdout == (
        f"export PULUMI_BACKEND_URL=file://{state}\nexport PULUMI_CONFIG_PASSPHRASE_FILE={state / 'passphrase-qa'}\n"
    )
    assert len(lab.cli.calls()) == calls_before
    # What the user's own command then sees is the stack make up will use.
    own = dict(os.environ, PATH=str(lab.cli.folder))
    own.update(line.split(" ", 1)[1].split("=", 1) for line in env.stdout.splitlines())
    mine = subprocess.run(
        ["pulumi", "config", "set", "--stack", "qa", "--", "nodeCount", "4"],
        cwd=lab.project, env=own, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert mine.returncode == 0, mine.stderr
    assert stack_file(lab, "qa")["falco-eks-lab:nodeCount"] == "4"


def test_env_adds_nothing_the_user_already_set_or_their_login_provides(lab):
    lab.cli.install(backend=CLOUD)
    assert lab.run("env").stdout == ""
    (lab.project / ".pulumi-state").mkdir()
    (lab.project / ".pulumi-state" / "passphrase-dev").write_text("x\n")
    (lab.project / ".pulumi-state" / "local-backend").write_text("")
    mine = lab.run("env", PULUMI_BACKEND_URL="s3://bucket", PULUMI_CONFIG_PASSPHRASE="theirs")
    assert mine.stdout == ""
    prefix = lab.run("env", "--assignments")
    state = lab.project / ".pulumi-state"
    assert prefix.stdout.strip() == (
        f"PULUMI_BACKEND_URL=file://{state} PULUMI_CONFIG_PASSPHRASE_FILE={state / 'passphrase-dev'}"
    )


# --- bad input and failure ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "key", "value", "named"),
    [
        ("bad name", "forwarderBuild", "source", "STACK='bad name'"),
        ("dev", "forwarderbuild", "source", "KEY='forwarderbuild' (did you mean forwarderBuild?)"),
        ("dev", "kubernetes:context", "x", "KEY='kubernetes:context'"),
        ("dev", "aws:regoin", "eu-west-1", "KEY='aws:regoin' (did you mean aws:region?)"),
        ("dev", "forwarderBuild", "podman", "forwarderBuild: must be 'docker' or 'source', got 'podman'"),
        ("dev", "nodeCount", "two", "nodeCount: VALUE='two' is not a whole number"),
        ("dev", "nodeCount", "0", "nodeCount: must be between 1 and"),
        ("dev", "apiPrivateOnly", "yes", "apiPrivateOnly: VALUE='yes' must be true or false"),
        ("dev", "extraLogTypes", "api", "extraLogTypes is a list"),
        ("dev", "extraLogTypes[0]", "bogus", "extraLogTypes: unknown log type"),
        ("dev", "extraLogTypes[2]", "api", "extraLogTypes[2]: the list holds 0 item(s) now"),
        ("dev", "aws:region", "moon", "aws:region: 'moon' is not an AWS region"),
        ("dev", "kubernetesVersion", "1.20", "kubernetesVersion: 1.20 is too old"),
        ("dev", "", "source", "KEY is not set"),
        ("dev", "forwarderBuild", None, "VALUE is not set"),
    ],
)
def test_bad_stack_key_or_value_is_refused_in_one_line_before_anything_runs(lab, stack, key, value, named):
    lab.cli.install(backend=None)
    done = config(lab, key, value, stack=stack)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert named in done.stderr
    assert lab.cli.calls() == []
    assert not (lab.project / ".pulumi-state").exists()
    assert not (lab.project / f"Pulumi.{stack}.yaml").exists()


def test_a_value_that_makes_another_setting_wrong_is_set_with_a_warning_saying_how_to_fix_it(lab):
    lab.cli.install(backend=CLOUD)
    lab.settings(auditSource="kinesis", kinesisShardCount=2)
    done = config(lab, "auditSource", "poll")
    assert done.returncode == 0, done.stderr
    assert "WARNING: with this value, 'make up' will stop at kinesisShardCount" in done.stdout
    assert "make config KEY=auditSource VALUE=kinesis" in done.stdout  # the program's hint, said the lab's way
    assert stack_file(lab)["falco-eks-lab:auditSource"] == "poll"


def test_config_without_the_pulumi_cli_names_what_to_install(lab):
    lab.cli.install(programs=())
    done = config(lab, "forwarderBuild", "source")
    assert done.returncode == 3
    assert "missing for 'make config':" in done.stderr and "Pulumi CLI: install it" in done.stderr
    assert "AWS CLI" not in done.stderr and "Docker" not in done.stderr  # settings need neither
    assert not (lab.project / ".pulumi-state").exists()


def test_a_stack_made_with_the_users_own_passphrase_never_gets_a_generated_one(lab):
    lab.cli.install(backend=None)
    first = config(lab, "nodeCount", "3", PULUMI_CONFIG_PASSPHRASE="mine")
    assert first.returncode == 0, first.stderr
    forgotten = config(lab, "nodeCount", "4")
    assert forgotten.returncode == 2
    assert "no secrets passphrase for stack dev: set PULUMI_CONFIG_PASSPHRASE" in forgotten.stderr
    assert not (lab.project / ".pulumi-state" / "passphrase-dev").exists()
    again = config(lab, "nodeCount", "4", PULUMI_CONFIG_PASSPHRASE="mine")
    assert again.returncode == 0, again.stderr
    assert stack_file(lab)["falco-eks-lab:nodeCount"] == "4"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_config_passes_a_json_list_through_make_and_the_shell_unchanged(lab):
    stack = f"t{uuid.uuid4().hex[:8]}"  # the Makefile works in the repository: a stack name no file uses
    lab.cli.install(backend=CLOUD)
    written = ROOT / f"Pulumi.{stack}.yaml"
    try:
        done = lab.make("config", "KEY=extraLogTypes", 'VALUE=["api", "scheduler"]', f"STACK={stack}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert yaml.safe_load(written.read_text())["config"]["falco-eks-lab:extraLogTypes"] == ["api", "scheduler"]
    finally:
        written.unlink(missing_ok=True)
    assert ["config", "set", "--path", "--stack", stack, "--", "extraLogTypes[1]", "scheduler"] in pulumi_calls(
        lab, "config"
    )
    assert {e["backend_url"] for e in lab.cli.entries()[1:]} == {CLOUD}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_workshop_commands_get_what_labctl_env_says(lab):
    """WORKSHOP_ENV is `labctl env --assignments` for the same stack: whatever the clone's state is."""
    stack = f"t{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    shown = subprocess.run(
        ["make", "--no-print-directory", "-n", "-C", str(ROOT), "pipeline", f"STACK={stack}"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    (line,) = [line for line in shown.stdout.splitlines() if "-m workshop" in line]
    expected = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "labctl", "env", "--assignments", "--stack", stack],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert line.startswith(f"{expected} .venv/bin/python -m workshop --stack {stack} pipeline".lstrip())
    mine = subprocess.run(
        ["make", "--no-print-directory", "-n", "-C", str(ROOT), "pipeline", f"STACK={stack}"],
        env=dict(env, PULUMI_BACKEND_URL="s3://mine", PULUMI_CONFIG_PASSPHRASE="mine"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert f".venv/bin/python -m workshop --stack {stack} pipeline" in mine.stdout
    assert "PULUMI_" not in mine.stdout  # the user's own settings are theirs: nothing added


def test_standins_refuse_a_second_backend(tmp_path: Path):
    """The stand-in keeps the stacks in one backend, so a test sees when a command uses two."""
    cli = StandIns(tmp_path / "bin").install(backend=CLOUD)
    env = dict(os.environ, PATH=str(cli.folder))
    first = subprocess.run(["pulumi", "stack", "select", "--create", "dev"], env=env, cwd=tmp_path, timeout=60)
    assert first.returncode == 0
    other = dict(env, PULUMI_BACKEND_URL="file:///elsewhere", PULUMI_CONFIG_PASSPHRASE="x")
    second = subprocess.run(
        ["pulumi", "stack", "select", "dev"], env=other, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 255 and "no stack named 'dev'" in second.stderr
