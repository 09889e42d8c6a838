"""What the upstream k8saudit rules file defines, at the exact version the lab's overrides were written against.

Names only, read from falcosecurity/plugins at tag ``plugins/k8saudit/v0.16.1``:
``plugins/k8saudit/rules/k8s_audit_rules.yaml`` (rules, macros, lists) and
``plugins/k8saudit/pkg/k8saudit/fields.go`` (the plugin's fields; their catalog is components/falco/fields.py).
The rules file is byte-identical at k8saudit 0.15.0, 0.16.0, 0.16.1 and 0.17.0; 0.18.0 changed it.
components/falco/upstream_changes.py checks every name its generated rules override or reference against
this list, so a renamed upstream macro or list fails `pulumi preview` and the tests, not the Falco
pod at start.

When the pinned version changes, re-read the new upstream file and update these sets with it.
"""

from __future__ import annotations

from . import fields as falco_fields

VERSION = falco_fields.K8SAUDIT_VERSION
"""Version of the k8saudit plugin and k8saudit-rules artifacts (falcoctl refs ``k8saudit:0.16.1``, ...)."""


RULES = frozenset(
    {
        "All K8s Audit Events",
        "Anonymous Request Allowed",
        "Attach to cluster-admin Role",
        "Attach/Exec Pod",
        "ClusterRole With Pod Exec Created",
        "ClusterRole With Wildcard Created",
        "ClusterRole With Write Privileges Created",
        "Create Disallowed Namespace",
        "Create Disallowed Pod",
        "Create HostIPC Pod",
        "Create HostNetwork Pod",
        "Create HostPid Pod",
        "Create NodePort Service",
        "Create Privileged Pod",
        "Create Sensitive Mount Pod",
        "Create/Modify Configmap With Private Credentials",
        "Disallowed K8s User",
        "EphemeralContainers Created",
        "Full K8s Administrative Access",
        "Ingress Object without TLS Certificate Created",
        "K8s ClusterRole Created",
        "K8s ClusterRole Deleted",
        "K8s ClusterRoleBinding Created",
        "K8s ClusterRoleBinding Deleted",
        "K8s ConfigMap Created",
        "K8s ConfigMap Deleted",
        "K8s Deployment Created",
        "K8s Deployment Deleted",
        "K8s Namespace Created",
        "K8s Namespace Deleted",
        "K8s Role Created",
        "K8s Role Deleted",
        "K8s RoleBinding Created",
        "K8s RoleBinding Deleted",
        "K8s Secret Created",
        "K8s Secret Deleted",
        "K8s Secret Get Successfully",
        "K8s Secret Get Unsuccessfully Tried",
        "K8s Service Created",
        "K8s Service Deleted",
        "K8s Serviceaccount Created",
        "K8s Serviceaccount Deleted",
        "Pod Created in Kube Namespace",
        "Service Account Created in Kube Namespace",
        "System ClusterRole Modified/Deleted",
        "Untrusted Node Successfully Joined the Cluster",
        "Untrusted Node Unsuccessfully Tried to Join the Cluster",
        "port-forward",
    }
)

MACROS = frozenset(
    {
        "allow_all_k8s_nodes",
        "allowed_full_admin_users",
        "allowed_k8s_containers",
        "allowed_kube_namespace_pods",
        "clusterrole",
        "clusterrolebinding",
        "configmap",
        "consider_activity_events",
        "consider_all_events",
        "contains_private_credentials",
        "deployment",
        "health_endpoint",
        "ingress",
        "ingress_tls",
        "k8s_audit_always_true",
        "k8s_audit_never_true",
        "kactivity",
        "kall",
        "kcreate",
        "kdelete",
        "kevt",
        "kevt_started",
        "kget",
        "kmodify",
        "live_endpoint",
        "namespace",
        "node",
        "non_system_user",
        "pod",
        "pod_subresource",
        "ready_endpoint",
        "response_successful",
        "role",
        "rolebinding",
        "secret",
        "sensitive_vol_mount",
        "service",
        "serviceaccount",
        "trusted_sa",
        "user_known_exec_pod_activities",
        "user_known_node_port_service",
        "user_known_pod_debug_activities",
        "user_known_portforward_activities",
        "writable_verbs",
    }
)

LISTS = frozenset(
    {
        "allowed_k8s_nodes",
        "allowed_k8s_users",
        "allowed_kube_namespace_image_list",
        "allowed_namespaces",
        "eks_allowed_k8s_users",
        "full_admin_k8s_users",
        "k8s_audit_hostipc_images",
        "k8s_audit_hostnetwork_images",
        "k8s_audit_hostpid_images",
        "k8s_audit_privileged_images",
        "k8s_audit_sensitive_mount_images",
        "k8s_audit_stages",
        "k8s_image_list",
        "known_sa_list",
        "user_allowed_kube_namespace_image_list",
        "user_known_sa_list",
        "user_trusted_image_list",
        "vertical_pod_autoscaler_users",
    }
)

FIELDS = frozenset(f.name for f in falco_fields.K8SAUDIT_FIELDS)
"""The k8saudit plugin's field names; the catalog with types, list fields and arguments is falco_fields."""
