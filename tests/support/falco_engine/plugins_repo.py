"""Files of falcosecurity/plugins at a pinned tag, read from a copy outside the repository.

The upstream k8saudit rules file is code from a public repository: it is never committed here, and
CI has no internet. Tests that need it (the replay of real Falco recordings, the check of the
pinned names) read it with ``git show <tag>:<path>`` from the git directory or checkout named by
``FALCO_PLUGINS_REPO``, and skip, saying how to enable them, when it is unset or lacks the tag.
"""

from __future__ import annotations

import os
import subprocess
from functools import cache

import pytest

ENV_VAR = "FALCO_PLUGINS_REPO"
HOW_TO = (
    f"set {ENV_VAR} to a git directory or checkout of https://github.com/falcosecurity/plugins "
    "that has the pinned tags (e.g. `git clone --bare https://github.com/falcosecurity/plugins`)"
)
K8SAUDIT_RULES = "plugins/k8saudit/rules/k8s_audit_rules.yaml"
K8SAUDIT_FIELDS_GO = "plugins/k8saudit/pkg/k8saudit/fields.go"
JSON_PLUGIN_GO = "plugins/json/pkg/json/json.go"


def k8saudit_tag(version: str) -> str:
    return f"plugins/k8saudit/v{version}"


def json_tag(version: str) -> str:
    return f"plugins/json/v{version}"


@cache
def _show(repo: str, tag: str, path: str) -> str | None:
    result = subprocess.run(
        ["git", "-C", repo, "show", f"{tag}:{path}"], capture_output=True, text=True, check=False
    )
    return result.stdout if result.returncode == 0 else None


def plugins_file(tag: str, path: str) -> str:
    """The file's text at ``tag``; skips the calling test when the repository or the tag is missing."""
    repo = os.environ.get(ENV_VAR)
    if not repo:
        pytest.skip(f"{ENV_VAR} is not set: {HOW_TO}")
    if not os.path.isdir(repo):
        pytest.skip(f"{ENV_VAR}={repo} is not a directory: {HOW_TO}")
    text = _show(repo, tag, path)
    if text is None:
        pytest.skip(f"{ENV_VAR}={repo} has no {tag}:{path}: {HOW_TO}")
    return text
