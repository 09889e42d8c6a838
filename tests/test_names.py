"""The name checks the components share (components/names.py), on the edges apimachinery and AWS draw."""

import pytest

from components.names import is_data_key, is_dns_label, is_dns_subdomain, is_label_key, is_label_value, is_region


@pytest.mark.parametrize(
    ("value", "most", "expected"),
    [
        ("falco", 63, True),
        ("a" * 63, 63, True),
        ("a" * 64, 63, False),
        ("a" * 53, 53, True),
        ("a" * 54, 53, False),
        ("falco-", 63, False),
        ("-falco", 63, False),
        ("Falco", 63, False),
        ("fal.co", 63, False),
        ("", 63, False),
        (None, 63, False),
    ],
)
def test_dns_labels(value: object, most: int, expected: bool) -> None:
    assert is_dns_label(value, most=most) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("audit-forwarder.state", True),
        ("a" * 253, True),
        ("a" * 254, False),
        ("a..b", False),
        ("A", False),
        ("", False),
    ],
)
def test_dns_subdomains(value: str, expected: bool) -> None:
    assert is_dns_subdomain(value) is expected


def test_a_subdomain_may_be_held_shorter_for_a_suffix() -> None:
    assert is_dns_subdomain("a" * 240, most=240) and not is_dns_subdomain("a" * 241, most=240)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("app.kubernetes.io/name", True),
        ("name", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("Example.com/name", False),
        ("example.com/", False),
        ("/name", False),  # a '/' needs a prefix before it
        ("", False),
    ],
)
def test_label_keys(value: str, expected: bool) -> None:
    assert is_label_key(value) is expected


@pytest.mark.parametrize(("value", "expected"), [("", True), ("v1.2_3-x", True), ("-x", False), ("a" * 64, False)])
def test_label_values(value: str, expected: bool) -> None:
    assert is_label_value(value) is expected


@pytest.mark.parametrize(("value", "expected"), [("url", True), ("SLACK_URL.v-1", True), ("a/b", False), ("", False)])
def test_data_keys(value: str, expected: bool) -> None:
    assert is_data_key(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("us-west-2", True), ("us-gov-east-1", True), ("ap-southeast-10", True), ("uswest2", False), ("US-WEST-2", False)],
)
def test_regions(value: str, expected: bool) -> None:
    assert is_region(value) is expected
