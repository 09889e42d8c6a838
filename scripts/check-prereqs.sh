#!/usr/bin/env bash
# Checks what `make up` / `make down` need and names everything that is missing, all at once.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

missing=()

if ! command -v pulumi >/dev/null 2>&1; then
    missing+=("Pulumi CLI: install it with 'curl -fsSL https://get.pulumi.com | sh' (https://www.pulumi.com/docs/install/)")
fi

if ! command -v aws >/dev/null 2>&1; then
    missing+=("AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html (the cluster's kubeconfig runs 'aws eks get-token')")
elif ! identity_error="$(aws sts get-caller-identity --output text --query Arn 2>&1 >/dev/null)"; then
    missing+=("AWS credentials: 'aws sts get-caller-identity' failed: ${identity_error//$'\n'/ } -- run 'aws configure' or 'aws sso login', or set AWS_PROFILE")
fi

# Docker only builds the forwarder image: not needed with forwarderImage or forwarderBuild=source.
if [[ "${1:-up}" == "up" ]]; then
    build="$(stack_setting forwarderBuild)"
    image="$(stack_setting forwarderImage)"
    if [[ "${build:-docker}" == "docker" && -z "$image" ]]; then
        if ! command -v docker >/dev/null 2>&1; then
            missing+=("Docker (builds the forwarder image): install Docker, or run 'pulumi config set forwarderBuild source --stack $STACK' to run the forwarder without building an image")
        elif ! docker info >/dev/null 2>&1; then
            missing+=("a running Docker engine (builds the forwarder image): start Docker, or run 'pulumi config set forwarderBuild source --stack $STACK'")
        fi
    fi
fi

if ((${#missing[@]} > 0)); then
    printf "Missing for 'make %s':\n" "${1:-up}" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi
say "Prerequisites found: pulumi, aws, AWS credentials$([[ "${1:-up}" == "up" && "${build:-docker}" == "docker" && -z "${image:-}" ]] && printf ', docker')"
