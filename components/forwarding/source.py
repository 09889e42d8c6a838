"""The bundled forwarder's source on disk: where it is, what ships, and a hash that changes with it.

Used two ways: the Docker build (the folder is the build context; the hash names the image tag) and the
no-Docker "source" mode (the files go into a ConfigMap; the hash rolls the pod when they change).
Everything here runs at program time, outside any apply().
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

# A ConfigMap holds at most 1 MiB (etcd's object limit); keep room for metadata.
CONFIGMAP_MAX_BYTES = 900 * 1024
_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "tests"})


def bundled_forwarder_dir() -> Path:
    """forwarder/ beside components/: the repository layout and the installed wheel's layout alike."""
    return Path(__file__).resolve().parents[2] / "forwarder"


@dataclass(frozen=True)
class SourceFile:
    relative_path: str  # e.g. "cli.py", "requirements.txt"
    text: str

    @property
    def configmap_key(self) -> str:
        # ConfigMap keys allow [-._a-zA-Z0-9] only: nested paths are flattened, and mapped back with items.
        return self.relative_path.replace("/", "__")


@dataclass(frozen=True)
class ForwarderSource:
    """The files the source mode ships: every *.py of the package plus the pinned requirements."""

    directory: Path
    files: tuple[SourceFile, ...]

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        for item in self.files:
            digest.update(item.relative_path.encode() + b"\0" + item.text.encode() + b"\0")
        return digest.hexdigest()

    @property
    def size_bytes(self) -> int:
        return sum(len(item.text.encode()) + len(item.configmap_key) for item in self.files)

    def configmap_data(self) -> dict[str, str]:
        return {item.configmap_key: item.text for item in self.files}

    def configmap_items(self) -> list[tuple[str, str]]:
        """(key, path) pairs that rebuild the folder layout inside the volume."""
        return [(item.configmap_key, item.relative_path) for item in self.files]


def _walk(directory: Path) -> list[Path]:
    found: list[Path] = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in relative.parts[:-1]):
            continue
        if path.is_file():
            found.append(path)
    return found


def load_forwarder_source(directory: Path, setting: str = "source_dir") -> ForwarderSource:
    """Read the package's *.py files and requirements.txt; fail with the setting's name if unusable."""
    if not (directory / "__main__.py").is_file():
        raise ConfigError(setting, f"{directory} is not the forwarder package (no __main__.py)")
    if not (directory / "requirements.txt").is_file():
        raise ConfigError(setting, f"{directory} has no requirements.txt with the forwarder's pinned dependencies")
    files = [
        SourceFile(path.relative_to(directory).as_posix(), path.read_text(encoding="utf-8"))
        for path in _walk(directory)
        if path.suffix == ".py" or path.relative_to(directory).as_posix() == "requirements.txt"
    ]
    source = ForwarderSource(directory=directory, files=tuple(files))
    if source.size_bytes > CONFIGMAP_MAX_BYTES:
        raise ConfigError(
            setting,
            f"the forwarder source is {source.size_bytes} bytes, more than a ConfigMap can hold "
            f"({CONFIGMAP_MAX_BYTES}); use build='docker' or an image",
        )
    return source


def context_sha256(directory: Path) -> str:
    """Hash of every file in a Docker build context (dot-folders and caches aside), for a content-named tag."""
    digest = hashlib.sha256()
    for path in _walk(directory):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
