"""The falco-eks component package: hosts the lab's Pulumi components for programs in other languages.

Pulumi runs this file (`python <this folder> <engine address>`) when a program that added the package
previews or deploys, and to read the package's schema when the package is added. The components are the
repository's own ../components, so the package is whatever commit `pulumi package add` fetched. What the
package serves (name, namespace, schema, strict inputs) is components/package/__init__.py.
"""

import sys
import tomllib
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def package_version() -> str:
    """The project's version (pyproject.toml, the one place it is set), so generated SDKs carry it."""
    with (REPOSITORY / "pyproject.toml").open("rb") as project:
        return str(tomllib.load(project)["project"]["version"])


def main() -> None:
    # components/ and the forwarder source it ships sit beside this folder; import them from there.
    sys.path.insert(0, str(REPOSITORY))
    from components.package import serve

    serve(package_version())


if __name__ == "__main__":
    main()
