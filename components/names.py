"""Names Kubernetes and AWS accept, as predicates: each caller words its own error, naming its setting.

Kubernetes: apimachinery's validation (DNS-1123 labels and subdomains, label keys and values, ConfigMap and Secret
data keys). AWS: the shape of a Region's name.
"""

import re

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def is_dns_label(value: object, most: int = 63) -> bool:
    """A DNS-1123 label (namespaces, most names) of at most `most` characters (Helm releases: 53)."""
    return isinstance(value, str) and len(value) <= most and bool(_DNS_LABEL.match(value))


def is_dns_subdomain(value: object, most: int = 253) -> bool:
    """A DNS-1123 subdomain (ConfigMap and Secret names) of at most `most` characters."""
    return isinstance(value, str) and len(value) <= most and bool(_DNS_SUBDOMAIN.match(value))


def is_label_key(value: object) -> bool:
    """A label key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters."""
    if not isinstance(value, str) or not value:
        return False
    prefix, slash, name = value.rpartition("/")
    return (not slash or is_dns_subdomain(prefix)) and len(name) <= 63 and bool(_LABEL_NAME.match(name))


def is_label_value(value: object) -> bool:
    """A label value: empty, or at most 63 characters starting and ending with a letter or digit."""
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def is_data_key(value: object) -> bool:
    """A key of a ConfigMap's or Secret's data."""
    return isinstance(value, str) and len(value) <= 253 and bool(_DATA_KEY.match(value))


def is_region(value: object) -> bool:
    """The shape of an AWS Region's name, e.g. us-west-2 or us-gov-east-1."""
    return isinstance(value, str) and bool(_REGION.match(value))
