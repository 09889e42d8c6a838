"""Old names of public classes, kept working with a DeprecationWarning.

0.4.0 renamed the settings objects that other components embed, because the component package's schema names
its object types after the Python classes, and `FalcoArgs` and `AuditedClusterArgs` collided there with the
argument types Pulumi's code generators make for the components `Falco` and `AuditedCluster` (Go renamed them
`FalcoArgsType`, TypeScript and Python got `FalcoArgsArgs`). The classes are the same; only the names changed.
"""

import importlib
import warnings
from typing import Any

RENAMED: dict[str, tuple[str, str]] = {
    "FalcoArgs": (".falco", "FalcoSettings"),
    "AuditedClusterArgs": (".cluster", "AuditedClusterSettings"),
}
"""Old name -> (module, relative to this package, so the installed `falco_eks.components` finds its own; new
name)."""


def renamed(module: str, name: str) -> Any:
    """The class `name` used to name (with a DeprecationWarning), for a module's `__getattr__`; AttributeError for
    any other name."""
    if name not in RENAMED:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    home, new = RENAMED[name]
    warnings.warn(f"{name} is deprecated since 0.4.0; use {new}, the same class", DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(home, package=__package__), new)
