"""Forwards EKS Kubernetes audit events from CloudWatch Logs to Falco's k8saudit webhook."""
