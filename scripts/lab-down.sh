#!/usr/bin/env bash
# `make down`: destroy everything the stack created, then remove the stack (its config file stays).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

select_backend
if ! pulumi stack select "$STACK" </dev/null >/dev/null 2>&1; then
    say "No stack $STACK in this backend: nothing to destroy."
    exit 0
fi
select_passphrase

read -r -a flags <<<"${PULUMI_FLAGS:-}"
pulumi destroy --stack "$STACK" "${flags[@]}"
# Only after a complete destroy: `stack rm` refuses a stack that still has resources.
pulumi stack rm "$STACK" --yes --preserve-config
say "Stack $STACK destroyed and removed; Pulumi.$STACK.yaml keeps its settings for the next 'make up'."
