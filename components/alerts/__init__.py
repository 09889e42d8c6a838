"""Where Falco's alerts go besides Falcosidekick's UI: the alert-outputs argument (outputs.py), the AWS side
FalcoDetection looks up or creates for it (destinations.py), and Falcosidekick's chart values, IAM documents and
NetworkPolicies (sidekick_config.py, sidekick_iam.py, sidekick_network.py) with the facts they follow
(sidekick_upstream.py)."""
