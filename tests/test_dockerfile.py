"""forwarder/Dockerfile's security and size properties, checked as data (no Docker engine needed)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORWARDER = ROOT / "forwarder"
DOCKERFILE = FORWARDER / "Dockerfile"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.args_of("ENV"):
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                values[key] = value
        return values


def _logical_lines(text: str) -> list[str]:
    """Instructions with line continuations joined and comment lines dropped (Dockerfile rules)."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def _substitute(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), value)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            parts = args.split()
            image = _substitute(parts[0], global_args)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=name))
        elif not stages:
            if keyword == "ARG":
                key, _, default = args.partition("=")
                global_args[key] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def _stage_arg_default(stage: Stage, name: str) -> str:
    for args in stage.args_of("ARG"):
        key, _, default = args.partition("=")
        if key == name:
            return default
    raise AssertionError(f"stage {stage.name} declares no ARG {name}")


def test_it_is_multi_stage_and_the_final_stage_copies_from_the_builder(dockerfile) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2
    builder_names = {s.name for s in stages[:-1]}
    copies_from = [a for a in stages[-1].args_of("COPY") if a.startswith("--from=")]
    assert copies_from, "the final stage should only receive built artefacts"
    assert all(a.split()[0].removeprefix("--from=") in builder_names for a in copies_from)


def test_base_image_is_a_pinned_python_slim_tag_shared_by_all_stages(dockerfile) -> None:
    _, stages = dockerfile
    images = {s.image for s in stages}
    assert len(images) == 1, f"stages must share one base so the venv's interpreter path matches: {images}"
    image = images.pop()
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image


def test_final_stage_runs_as_a_numeric_non_root_user(dockerfile) -> None:
    _, stages = dockerfile
    users = stages[-1].args_of("USER")
    assert users, "the final stage must set USER"
    match = re.fullmatch(r"(\d+):(\d+)", users[-1])
    assert match, f"USER must be numeric uid:gid (Kubernetes runAsNonRoot checks it), got {users[-1]!r}"
    assert int(match.group(1)) != 0 and int(match.group(2)) != 0


def test_no_compilers_and_no_package_installs_in_the_final_stage(dockerfile) -> None:
    _, stages = dockerfile
    final_text = " ".join(args for _, args in stages[-1].instructions)
    for word in ("build-essential", "gcc", "g++", "make ", "apt-get", "apk add", "pip install"):
        assert word not in final_text, word
    # Even the builder needs no compiler: every runtime dependency ships as a wheel (--only-binary).
    whole = DOCKERFILE.read_text()
    assert "build-essential" not in whole and "gcc" not in whole


def test_dependencies_come_from_the_pinned_requirements_without_pip_cache(dockerfile) -> None:
    _, stages = dockerfile
    builder = stages[0]
    runs = " ".join(builder.args_of("RUN"))
    assert re.search(r"pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements\.txt", runs), runs
    assert any(a.endswith("/requirements.txt /tmp/requirements.txt") for a in builder.args_of("COPY"))
    pins = [
        line.strip()
        for line in (FORWARDER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", p) for p in pins), pins


def test_final_stage_writes_nothing_at_run_time(dockerfile) -> None:
    _, stages = dockerfile
    final = stages[-1]
    env = final.env()
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("HOME", "").startswith("/tmp"), "anything that insists on a home must land on the /tmp mount"
    assert not final.args_of("RUN"), "no RUN in the final stage"
    assert not final.args_of("VOLUME")
    # Bytecode is compiled in the builder, since the running container cannot write it.
    assert "compileall" in " ".join(stages[0].args_of("RUN"))


def test_entrypoint_runs_the_forwarder_module(dockerfile) -> None:
    _, stages = dockerfile
    entrypoints = stages[-1].args_of("ENTRYPOINT")
    assert entrypoints and json.loads(entrypoints[-1]) == ["python", "-m", "forwarder"]


@pytest.mark.parametrize(("context", "forwarder_src"), [(FORWARDER, None), (ROOT, "forwarder")])
def test_copy_sources_exist_in_both_documented_build_contexts(dockerfile, context: Path, forwarder_src) -> None:
    _, stages = dockerfile
    builder = stages[0]
    variables = {"FORWARDER_SRC": forwarder_src or _stage_arg_default(builder, "FORWARDER_SRC")}
    for args in builder.args_of("COPY"):
        *sources, _dest = args.split()
        for source in sources:
            path = context / _substitute(source, variables)
            assert path.exists(), f"COPY {source} missing from context {context}"
    assert (context / variables["FORWARDER_SRC"] / "__init__.py").exists(), "FORWARDER_SRC must point at the package"


def test_dockerignore_keeps_bytecode_and_caches_out() -> None:
    patterns = [
        line.strip()
        for line in (FORWARDER / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for required in ("**/__pycache__", "**/*.py[cod]"):
        assert required in patterns
    assert "requirements.txt" not in patterns and "*.py" not in patterns


def _ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule for these patterns: a path is left out when it, or a folder above it, matches a
    pattern; `**/` is any number of folders (none included), `*` and `?` stay within one name."""
    for pattern in patterns:
        regex = ""
        rest = pattern
        while rest:
            if rest.startswith("**/"):
                regex, rest = regex + "(?:.*/)?", rest[3:]
            elif rest[0] == "*":
                regex, rest = regex + "[^/]*", rest[1:]
            elif rest[0] == "?":
                regex, rest = regex + "[^/]", rest[1:]
            elif rest[0] == "[":
                close = rest.index("]")
                regex, rest = regex + rest[: close + 1], rest[close + 1 :]
            else:
                regex, rest = regex + re.escape(rest[0]), rest[1:]
        parts = relative.split("/")
        if any(re.fullmatch(regex, "/".join(parts[: i + 1])) for i in range(len(parts))):
            return True
    return False


def test_the_build_context_sends_every_module_of_the_package_and_its_requirements() -> None:
    """The image gets what the context sends: the .dockerignore must not leave out a subpackage's modules."""
    patterns = [
        line.strip()
        for line in (FORWARDER / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    modules = [p.relative_to(FORWARDER).as_posix() for p in FORWARDER.rglob("*.py") if "__pycache__" not in p.parts]
    assert any("/" in module for module in modules), "the package has subpackages"
    assert [m for m in [*modules, "requirements.txt"] if _ignored(m, patterns)] == []
    # The matcher itself: what the file is there to keep out is kept out, at any depth.
    assert _ignored("sources/__pycache__/cloudwatch.cpython-311.pyc", patterns)
    assert _ignored("cli.pyc", patterns) and _ignored("checkpoint/store.pyc", patterns)
    assert _ignored("Dockerfile", patterns) and _ignored("tests/test_x.py", patterns)
    assert not _ignored("sources/tests.py", patterns) and not _ignored("delivery/sender.py", ["*.py"])
