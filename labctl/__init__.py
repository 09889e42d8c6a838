"""The lab's commands in AWS: `make up`, `make down`, `make config`, `make stack`, `make env`.

Python instead of shell scripts, so the commands behave the same on Linux and macOS (no bash 3.2
quirks, no GNU-only tools): they run `pulumi` and `aws` as argument lists, never through a shell.

- `up`: checks what is needed (all missing things named at once), opens the stack (backend, secrets
  passphrase, the stack itself, created if new), sets its region, removes a log group an earlier cluster of
  this stack left behind (never one another stack owns), runs `pulumi up`, says what next.
- `down`: runs `pulumi destroy`, then waits for EKS to stop recreating the cluster's log group and
  deletes it each time it comes back, then removes the stack. Every step can simply be run again.
- `config`: checks one setting against Pulumi.yaml and the program's own checks, opens the stack as `up`
  does, and sets it: settings can be made before the first `up`, with nothing logged in to.
- `stack`, `env`: open the stack as `up` does / make nothing; both print what the user's own pulumi
  commands need (PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE_FILE).

The backend goes to every pulumi command in PULUMI_BACKEND_URL; nothing runs `pulumi login` (see stack.py).
"""
