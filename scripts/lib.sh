# shellcheck shell=bash
# Shared by the lab's `make up` / `make down` scripts (sourced, not run).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${STACK:-dev}"
PROJECT="falco-eks-lab"
LOCAL_STATE="$ROOT/.pulumi-state"
PASSPHRASE_FILE="$LOCAL_STATE/passphrase-$STACK"

say() { printf '==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A project setting from Pulumi.<stack>.yaml as `pulumi config set` writes it (empty if unset),
# read without the Pulumi CLI so prerequisite checks can use it.
stack_setting() {
    local file="$ROOT/Pulumi.$STACK.yaml" value
    [[ -f "$file" ]] || return 0
    value="$(sed -n "s/^  $PROJECT:$1: *//p" "$file" | head -n 1)"
    value="${value%\"}"; value="${value#\"}"
    value="${value%\'}"; value="${value#\'}"
    printf '%s' "$value"
}

# Log in to the local file backend in the repository unless the user already uses a backend.
# `pulumi whoami` runs without a terminal on stdin so it can never start an interactive login.
select_backend() {
    local backend
    if [[ -n "${PULUMI_BACKEND_URL:-}" ]]; then
        backend="$PULUMI_BACKEND_URL"
    elif backend="$(pulumi whoami --verbose </dev/null 2>/dev/null | sed -n 's/^Backend URL: *//p')" && [[ -n "$backend" ]]; then
        :
    else
        mkdir -p "$LOCAL_STATE"
        backend="file://$LOCAL_STATE"
        say "Not logged in to a Pulumi backend: using the local file backend $backend"
        pulumi login "$backend" >/dev/null
    fi
    say "Pulumi backend: $backend"
    BACKEND="$backend"
}

# Stacks in a file backend keep their secrets (kubeconfig, UI password) encrypted with a passphrase.
# Use the caller's if set; otherwise the stack's generated one in the git-ignored state folder,
# generated on first use when $1 is "create" (never for `make down`: a new one could not decrypt).
select_passphrase() {
    [[ "$BACKEND" == file://* ]] || return 0
    if [[ -n "${PULUMI_CONFIG_PASSPHRASE:-}" || -n "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
        say "Secrets passphrase: from PULUMI_CONFIG_PASSPHRASE(_FILE)"
        return 0
    fi
    if [[ ! -f "$PASSPHRASE_FILE" ]]; then
        [[ "${1:-}" == "create" ]] || fail "no secrets passphrase for stack $STACK: set PULUMI_CONFIG_PASSPHRASE (or _FILE) to the one it was created with"
        mkdir -p "$LOCAL_STATE"
        (umask 077 && head -c 32 /dev/urandom | base64 >"$PASSPHRASE_FILE")
        say "Generated a secrets passphrase for stack $STACK in $PASSPHRASE_FILE (git-ignored)."
        say "Keep it: without it the stack's secrets cannot be read, nor the stack destroyed by Pulumi."
    else
        say "Secrets passphrase: $PASSPHRASE_FILE"
    fi
    export PULUMI_CONFIG_PASSPHRASE_FILE="$PASSPHRASE_FILE"
}
