"""The installable package: one import name of its own, compatible version ranges, usable beside a
company's own `components` package.

The wheel is built from a copy of the sources (so the build leaves nothing in the checkout) and
installed into a new virtual environment. That environment finds the already-installed
dependencies through a .pth file instead of downloading them again: the test is about our
package, and `pip check`-style verification below still proves the declared ranges accept them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "falco_eks", "components", "forwarder", "workshop")
IMPORT_NAME = "falco_eks"


def _copy_sources(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    _copy_sources(src)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--wheel-dir", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("*.whl")
    return built


def _metadata(wheel: Path) -> tuple[list[str], list[Requirement]]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(archive.read(meta_name).decode())
    return names, [Requirement(r) for r in meta.get_all("Requires-Dist") or []]


def test_wheel_installs_one_top_level_package_of_its_own(wheel: Path) -> None:
    names, _ = _metadata(wheel)
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {IMPORT_NAME}
    # What the components build or ship from the forwarder's folder is in the wheel too.
    for shipped in ("forwarder/Dockerfile", "forwarder/requirements.txt", "forwarder/__main__.py",
                    "components/__init__.py", "workshop/__main__.py"):
        assert f"{IMPORT_NAME}/{shipped}" in names, shipped
    # Every module, in every subpackage.
    sources = {
        f"{IMPORT_NAME}/{path.relative_to(ROOT).as_posix()}"
        for folder in ("components", "forwarder", "workshop")
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sources - set(names) == set()


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    """setuptools ships only the packages pyproject.toml lists: a new folder left out would be missing installed."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(project["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join((IMPORT_NAME, *init.parent.relative_to(ROOT).parts))
        for folder in ("components", "forwarder", "workshop")
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert on_disk - listed == set()
    assert listed - on_disk == {IMPORT_NAME}


def test_install_requirements_are_ranges_not_pins(wheel: Path) -> None:
    _, requirements = _metadata(wheel)
    assert requirements, "the wheel declares its dependencies"
    for req in requirements:
        operators = {spec.operator for spec in req.specifier}
        assert "==" not in operators and "===" not in operators, f"{req} pins an exact version"
        assert any(op.startswith("<") for op in operators), f"{req} has no upper bound (next major)"
        assert any(op.startswith(">") for op in operators), f"{req} has no lower bound"


def test_the_lab_pins_stay_exact_and_fit_the_ranges(wheel: Path) -> None:
    _, requirements = _metadata(wheel)
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"requirements.txt must pin exactly: {line}"
            pins[req.name.lower()] = spec.version
    for req in requirements:
        if req.marker is not None:
            continue  # extras are checked by the forwarder's own pins
        pinned = pins.get(req.name.lower())
        assert pinned is not None, f"{req.name} is not pinned for the lab"
        assert req.specifier.contains(pinned), f"the lab's pin {req.name}=={pinned} is outside {req}"


COMPANY_PROGRAM = textwrap.dedent(
    """
    import importlib.util, json, sys
    from importlib.metadata import distribution, version
    from packaging.requirements import Requirement

    import components  # the company's own package, in this directory
    assert components.OWNER == "company", components.__file__

    from falco_eks.components import AuditedClusterSettings, FalcoEksLab, FalcoEksLabArgs

    # Every declared dependency is satisfied by what this environment has (pip check, by hand).
    unmet = [r for r in map(Requirement, distribution("falco-eks").requires or [])
             if r.marker is None and not r.specifier.contains(version(r.name))]
    assert not unmet, unmet

    spec = importlib.util.spec_from_file_location("pulumi_mocks", sys.argv[1])
    mocks = importlib.util.module_from_spec(spec)
    sys.modules["pulumi_mocks"] = mocks
    spec.loader.exec_module(mocks)
    # The deprecated names resolve to the installed classes, not to anything in the company's `components`.
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from falco_eks.components import FalcoArgs
        from falco_eks.components.cluster import AuditedClusterArgs
    from falco_eks.components.falco import FalcoSettings
    assert FalcoArgs is FalcoSettings and AuditedClusterArgs is AuditedClusterSettings
    ours = {(w.category, str(w.message).split()[0]) for w in caught if "deprecated since 0.4.0" in str(w.message)}
    assert ours == {(DeprecationWarning, "FalcoArgs"), (DeprecationWarning, "AuditedClusterArgs")}, ours

    args = FalcoEksLabArgs(cluster=AuditedClusterSettings(cluster_name="company-lab"))
    recorded = mocks.run_program(lambda: FalcoEksLab("lab", args))

    # The component package's schema, from the installed modules (the analyzer reads their source).
    from pulumi.provider.experimental.component import ComponentProvider
    from falco_eks.components import COMPONENTS
    schema = json.loads(ComponentProvider(list(COMPONENTS), "falco-eks", None, "0.0.0").schema)
    lab_inputs = schema["resources"]["falco-eks:index:FalcoEksLab"]["inputProperties"]

    # What the source mode ships and the Docker build's context: the installed forwarder, subpackages and all.
    from falco_eks.components.forwarding.source import bundled_forwarder_dir, load_forwarder_source
    shipped = load_forwarder_source(bundled_forwarder_dir())
    print(json.dumps({
        "forwarder_dir": str(shipped.directory),
        "forwarder_files": [item.relative_path for item in shipped.files],
        "schema_resources": sorted(schema["resources"]),
        "lab_input_descriptions": all(p.get("description") for p in lab_inputs.values()),
        "falco_eks": __import__("falco_eks").__file__,
        "components": components.__file__,
        "types": sorted({r.type for r in recorded.resources}),
        "count": len(recorded.resources),
    }))
    """
)


def test_installed_package_builds_a_lab_beside_a_company_components_package(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip())
    # The dependencies already installed for the tests, without a download.
    deps = Path(subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip())
    (site / "test-dependencies.pth").write_text(f"{deps}\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
         "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    company = tmp_path / "company-stack"
    (company / "components").mkdir(parents=True)
    (company / "components" / "__init__.py").write_text('OWNER = "company"\n')
    (company / "main.py").write_text(COMPANY_PROGRAM)
    run = subprocess.run(
        [str(python), "main.py", str(ROOT / "tests" / "pulumi_mocks.py")],
        cwd=company, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"},
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["falco_eks"].startswith(str(site)), "falco_eks came from the installed wheel"
    assert result["components"] == str(company / "components" / "__init__.py")
    assert result["forwarder_dir"] == str(site / IMPORT_NAME / "forwarder")
    assert {"__main__.py", "requirements.txt", "sources/cloudwatch.py", "checkpoint/store.py"} <= set(
        result["forwarder_files"]
    )
    for typ in ("falco-eks:index:FalcoEksLab", "falco-eks:index:AuditedCluster", "falco-eks:index:Falco",
                "falco-eks:index:AuditForwarder", "eks:index:Cluster", "kubernetes:helm.sh/v3:Release"):
        assert typ in result["types"], typ
    assert result["count"] > 30
    assert "falco-eks:index:FalcoDetection" in result["schema_resources"] and len(result["schema_resources"]) == 7
    assert result["lab_input_descriptions"]


@pytest.mark.parametrize("package", ["components", "forwarder", "workshop"])
def test_modules_import_their_own_package_relatively(package: str) -> None:
    """Installed, the packages are falco_eks.<name>: an absolute `import components...` inside them would
    load whatever `components` the user has instead (or nothing)."""
    import ast

    ours = {"components", "forwarder", "workshop"}
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in ours]
    assert offenders == []
