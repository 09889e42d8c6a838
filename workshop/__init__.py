"""The lab's trigger-and-observe flow: `python -m workshop trigger|alerts|pipeline|cleanup`.

It drives kubectl against the lab cluster (the stack's kubeconfig, or --kubeconfig) to create what
each example rule detects, cleans up after itself, and reads the alerts back from Falco's pods,
and compares what the forwarder delivered with what Falco evaluated.
It imports nothing from Pulumi or the components: it only needs Python, kubectl and (for the
stack's kubeconfig) the Pulumi CLI.
"""
