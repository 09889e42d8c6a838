"""Images and the Falco chart from a company's mirror instead of Docker Hub and falcosecurity.github.io.

An image mirror is a registry host with an optional path, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/
docker-hub` (an ECR pull-through cache) or `harbor.example.com/dockerhub` (a Harbor proxy project). Images keep
their Docker Hub repository path under it: `falcosecurity/falco`, `redis/redis-stack`, and `library/python` for
Docker's official images, which is how pull-through caches and proxy projects lay them out.

A chart source is a Helm repository (`https://...`) or an OCI registry path (`oci://host/path`) holding the
`falco` chart as `oci://host/path/falco`.
"""

import re

from ..errors import ConfigError

# host[:port] then optional path segments; registries are lower case (OCI distribution spec).
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")
_OCI = re.compile(r"^oci://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*/?$")


def check_registry(setting: str, registry: str) -> None:
    """Refuse anything but `host[:port][/path]`."""
    if not isinstance(registry, str) or not _REGISTRY.match(registry):
        raise ConfigError(
            setting,
            f"{registry!r} is not a registry such as registry.example.com/mirror (host, optional port and path, "
            "lower case, no scheme, no trailing slash)",
        )


def check_chart_source(setting: str, source: str) -> None:
    """Refuse anything but an https:// Helm repository or an oci:// registry path."""
    if isinstance(source, str) and source.startswith("https://") and len(source) > len("https://"):
        return
    if isinstance(source, str) and _OCI.match(source):
        return
    raise ConfigError(
        setting,
        f"{source!r} must be an https:// Helm repository or an oci:// registry path (e.g. "
        "oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/charts, where the chart is .../charts/falco)",
    )


def is_oci(source: str) -> bool:
    return source.startswith("oci://")


def docker_hub_repository(image: str) -> str:
    """The Docker Hub path of an image reference without a registry: `python:3.11` -> `library/python:3.11`."""
    return image if "/" in image.split(":", 1)[0] else f"library/{image}"


def mirrored(image: str, registry: str | None) -> str:
    """A Docker Hub image reference (no registry) as pulled through `registry`; unchanged without one."""
    return image if registry is None else f"{registry}/{docker_hub_repository(image)}"


def check_image_reference(setting: str, image: object) -> None:
    """Refuse an empty image reference or one with spaces; Outputs are checked where they resolve."""
    if isinstance(image, str) and (not image.strip() or any(c.isspace() for c in image)):
        raise ConfigError(setting, f"{image!r} is not an image reference")
