"""Build the bundled forwarder into an image in a stack-owned ECR repository.

Called from AuditForwarder with parent=<the component>; every resource here is that component's child.
The Deployment runs the pushed image by digest (`<repo>:<tag>@sha256:...`), so what runs is exactly what
was built, whatever happens to the tag.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from ..args import Architecture
from .source import context_sha256

PLATFORMS: dict[Architecture, docker_build.Platform] = {
    Architecture.AMD64: docker_build.Platform.LINUX_AMD64,
    Architecture.ARM64: docker_build.Platform.LINUX_ARM64,
}

# Tagged images kept by the lifecycle policy; older ones expire (the repository goes with the stack anyway).
KEEP_TAGGED_IMAGES = 5


def lifecycle_policy_document(keep: int = KEEP_TAGGED_IMAGES) -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"keep the {keep} newest forwarder images",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": ["*"],
                        "countType": "imageCountMoreThan",
                        "countNumber": keep,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    )


def _portable_path(path: Path) -> str:
    """Relative to the program's working directory (the Pulumi project), as docker-build resolves it.

    An absolute path would be stored in the state and show as a change (and a rebuild) whenever the stack is
    deployed from another checkout or machine.
    """
    try:
        return os.path.relpath(path, Path.cwd())
    except ValueError:  # another drive on Windows: no relative form exists
        return str(path)


@dataclass(frozen=True)
class BuiltImage:
    repository: aws.ecr.Repository
    lifecycle: aws.ecr.LifecyclePolicy
    image: docker_build.Image
    ref: pulumi.Output[str]


def build_forwarder_image(
    name: str,
    *,
    context_dir: Path,
    dockerfile: Path,
    architecture: Architecture,
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> BuiltImage:
    """ECR repository (deleted with its images on destroy) + lifecycle policy + docker-build Image pushed to it."""
    repository = aws.ecr.Repository(
        f"{name}-repo",
        force_delete=True,  # `pulumi destroy` must not stop at a repository that still holds images
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
        # The Deployment pins the pushed digest, so a moved tag never changes what runs. Immutable tags would
        # instead fail `pulumi up` whenever unchanged source is rebuilt (another machine, a provider upgrade):
        # builds are not byte-reproducible, and the second push of the same tag would be refused.
        image_tag_mutability="MUTABLE",
        encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    lifecycle = aws.ecr.LifecyclePolicy(
        f"{name}-repo-lifecycle",
        repository=repository.name,
        policy=lifecycle_policy_document(),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    token = aws.ecr.get_authorization_token_output(
        registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=parent)
    )
    registry = repository.repository_url.apply(lambda url: url.split("/", 1)[0])
    # Tags name the content and the platform: readable in the console, and a change is a new tag.
    tag = f"{context_sha256(context_dir)[:16]}-{architecture}"
    image = docker_build.Image(
        f"{name}-image",
        context=docker_build.BuildContextArgs(location=_portable_path(context_dir)),
        dockerfile=docker_build.DockerfileArgs(location=_portable_path(dockerfile)),
        platforms=[PLATFORMS[architecture]],
        push=True,
        tags=[repository.repository_url.apply(lambda url: f"{url}:{tag}")],
        registries=[
            docker_build.RegistryArgs(
                address=registry,
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            )
        ],
        build_on_preview=False,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[lifecycle]),
    )
    return BuiltImage(repository=repository, lifecycle=lifecycle, image=image, ref=image.ref)
