#!/usr/bin/env bash
# `make up`: pick a backend and the stack, make sure a region is set, run `pulumi up`.
# Run after check-prereqs.sh and `make venv` (the Makefile does both first).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

select_backend
select_passphrase create

pulumi stack select --create "$STACK" </dev/null
say "Stack: $STACK"

if ! region="$(pulumi config get aws:region --stack "$STACK" 2>/dev/null)" || [[ -z "$region" ]]; then
    region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
    [[ -n "$region" ]] || fail "no AWS region: run 'pulumi config set aws:region us-west-2 --stack $STACK' (or export AWS_REGION) and try again"
    pulumi config set aws:region "$region" --stack "$STACK"
    say "Set aws:region to $region (from your AWS environment)"
fi
say "Region: $region"

# Extra flags for `pulumi up`, e.g. `make up PULUMI_FLAGS=--yes`.
read -r -a flags <<<"${PULUMI_FLAGS:-}"
pulumi up --stack "$STACK" "${flags[@]}"

say "The lab is up. Next steps:"
if [[ -n "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
    printf '  export PULUMI_CONFIG_PASSPHRASE_FILE=%q   # for your own pulumi commands on this stack\n' "$PULUMI_CONFIG_PASSPHRASE_FILE"
fi
cat <<NEXT
  aws eks update-kubeconfig --region $region --name "\$(pulumi stack output clusterName --stack $STACK)"
  kubectl get pods -A
  pulumi stack output --stack $STACK          # the Falco UI command, the forwarder's logs and metrics commands
  pulumi stack output falcoUiPassword --show-secrets --stack $STACK
Tear it down with: make down
NEXT
