"""`make up` and `make down`: bring the lab up in AWS and take it away again, leaving nothing behind.

Python instead of shell scripts, so the commands behave the same on Linux and macOS (no bash 3.2
quirks, no GNU-only tools): they run `pulumi` and `aws` as argument lists, never through a shell.

- `up`: checks what is needed (all missing things named at once), picks the Pulumi backend and the
  secrets passphrase, selects or creates the stack, sets its region, removes a log group an earlier
  cluster of this stack left behind (never one another stack owns), runs `pulumi up`, says what next.
- `down`: runs `pulumi destroy`, then waits for EKS to stop recreating the cluster's log group and
  deletes it each time it comes back, then removes the stack. Every step can simply be run again.
"""
