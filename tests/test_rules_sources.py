"""Hostile source addresses: the operator's list turned into Falco text matches (components/falco/rules/addresses.py),
and the rule that uses them (components/falco/rules/sources.py) on requests the tests write."""

from __future__ import annotations

import ipaddress

import pytest
from support.k8s_requests import ANONYMOUS, DEVELOPER, Request, service_account
from support.lab_engine import fired as lab_fired
from support.lab_engine import lab_engine

from components.errors import ConfigError
from components.falco.rules.addresses import MAX_PREFIXES, MAX_TERMS_PER_ENTRY, go_ip_string, source_match
from components.falco.rules.sources import MAX_SOURCE_ADDRESSES

SETTING = "hostile_source_addresses"
HOSTILE = "Request From Hostile Source Address"
PADDED = "Source Address Chain Too Long"


def match(*entries: str):
    return source_match(entries, SETTING)


# --- as the API server prints addresses -------------------------------------------------------------------

# Go's net.IP.String() of each address (net/ip.go: IPv4-mapped as dotted IPv4; netip's RFC 5952 form for IPv6:
# lower case, no leading zeros, the first longest run of two or more zero groups as '::', a lone zero group kept).
GO_PRINTS = [
    ("192.0.2.1", "192.0.2.1"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("2001:DB8::1", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
    ("0:0:0:0:0:0:0:1", "::1"),
    ("2001:db8:1:0:0:0:0:0", "2001:db8:1::"),
    ("::102:304", "::102:304"),
]


@pytest.mark.parametrize(("written", "printed"), GO_PRINTS)
def test_addresses_are_matched_as_go_prints_them(written: str, printed: str) -> None:
    assert go_ip_string(ipaddress.ip_address(written)) == printed
    assert match(written).addresses == (printed,)


@pytest.mark.parametrize(
    ("entry", "addresses", "prefixes"),
    [
        ("185.220.101.34", ("185.220.101.34",), ()),
        ("185.220.101.34/32", ("185.220.101.34",), ()),
        ("10.0.0.0/8", (), ("10.",)),
        ("10.1.0.0/16", (), ("10.1.",)),
        ("198.51.100.0/24", (), ("198.51.100.",)),
        ("10.0.0.0/22", (), ("10.0.0.", "10.0.1.", "10.0.2.", "10.0.3.")),
        ("172.16.0.0/12", (), tuple(f"172.{n}." for n in range(16, 32))),
        ("192.0.2.0/30", ("192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"), ()),
        ("::ffff:10.0.0.0/104", (), ("10.",)),
        ("2001:db8:beef::/48", (), ("2001:db8:beef:",)),
        ("2001:db8::/32", (), ("2001:db8:",)),
        ("2001:db8:1:2:3:4:5:0/126", ("2001:db8:1:2:3:4:5:0", "2001:db8:1:2:3:4:5:1", "2001:db8:1:2:3:4:5:2",
                                      "2001:db8:1:2:3:4:5:3"), ()),
        ("2001:db8:a00::/40", (), tuple(f"2001:db8:{n:x}:" for n in range(0xA00, 0xB00))),
    ],
)  # fmt: skip
def test_ranges_become_octet_or_group_aligned_text_or_addresses(
    entry: str, addresses: tuple[str, ...], prefixes: tuple[str, ...]
) -> None:
    found = match(entry)
    assert (found.addresses, found.prefixes) == (addresses, prefixes)


def test_every_address_of_a_range_starts_with_one_of_its_texts_and_no_address_outside_does() -> None:
    for entry, inside, outside in [
        ("10.0.0.0/22", ["10.0.0.1", "10.0.3.255"], ["10.0.4.0", "110.0.0.1", "10.0.40.1"]),
        ("2001:db8:beef::/48", ["2001:db8:beef::1", "2001:db8:beef:1::"], ["2001:db8:bee::1", "2001:db8:beee::1"]),
        ("2001:db8::/32", ["2001:db8::", "2001:db8:0:1::1", "2001:db8:ffff::"], ["2001:db80::1", "2001:db9::1"]),
    ]:
        texts = ['"' + p for p in match(entry).prefixes]
        for address in inside:
            assert any(t in f'["{go_ip_string(ipaddress.ip_address(address))}"]' for t in texts), (entry, address)
        for address in outside:
            assert not any(t in f'["{go_ip_string(ipaddress.ip_address(address))}"]' for t in texts), (entry, address)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("tor-exit.example.org", "not an IP address or CIDR"),
        ("10.0.0.1/16", "host bits set"),
        ("10.0.0.0/255.0.0.0", "prefix length must be a number"),
        ("10.0.0.0/33", "not an IP address or CIDR"),
        ("010.0.0.1", "not an IP address or CIDR"),
        (" 10.0.0.1", "not an IP address or CIDR"),
        ("", "not an IP address or CIDR"),
        ("fe80::1%eth0", "scope zone"),
        ("2001:0:0:1::/64", "'::' inside the range's own"),
        ("2001:db8::/33", "at most 256 per entry"),
        ("::/0", "at most 256 per entry"),
        ("2001:db8::/100", "at most 256 per entry"),
    ],
)
def test_entries_that_cannot_be_matched_faithfully_are_refused_naming_the_setting(entry: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        match("192.0.2.1", entry)
    assert refused.value.setting == SETTING
    assert reason in refused.value.message
    assert repr(entry) in refused.value.message


def test_a_list_that_is_not_a_list_or_holds_no_strings_is_refused() -> None:
    with pytest.raises(ConfigError, match="not one string"):
        source_match("10.0.0.0/8", SETTING)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not an IP address"):
        source_match([10], SETTING)  # type: ignore[list-item]


def test_the_bounds_refuse_lists_that_would_cost_falco_too_much() -> None:
    assert MAX_TERMS_PER_ENTRY == 256
    many_ranges = [f"10.{n // 256}.{n % 256}.0/24" for n in range(MAX_PREFIXES + 1)]
    with pytest.raises(ConfigError, match=f"at most {MAX_PREFIXES}"):
        source_match(many_ranges, SETTING)
    # Exact addresses are cheap (a set lookup): a Tor exit list of a few thousand passes.
    tor_like = [str(ipaddress.ip_address("100.64.0.0") + n) for n in range(3000)]
    assert len(source_match(tor_like, SETTING).addresses) == 3000


def test_duplicates_are_kept_once_in_order() -> None:
    found = match("192.0.2.7", "192.0.2.7/32", "::ffff:192.0.2.7", "10.0.0.0/8", "10.0.0.0/8")
    assert (found.addresses, found.prefixes) == (("192.0.2.7",), ("10.",))


# --- the rule, on requests ------------------------------------------------------------------------------------


def _from(*sources: str, user=DEVELOPER) -> Request:
    return Request(user, "list", "pods", "app", source_ips=sources)


@pytest.mark.parametrize(
    "sources",
    [
        ("185.220.101.34",),  # the peer itself
        ("185.220.101.34", "127.0.0.1"),  # claimed in X-Forwarded-For, in front of a proxy
        ("10.9.8.7", "185.220.101.34"),  # the peer, behind a claimed address
        ("198.51.100.23", "127.0.0.1"),  # in a listed range
        ("203.0.113.9", "198.51.100.200"),
        ("2001:db8:beef:1::5",),
        tuple(f"10.0.0.{n}" for n in range(MAX_SOURCE_ADDRESSES - 1))
        + ("185.220.101.34",),  # the last position looked at
    ],
)
def test_a_request_from_a_listed_address_or_range_alerts_wherever_it_stands(sources: tuple[str, ...]) -> None:
    assert HOSTILE in lab_fired(_from(*sources))
    assert HOSTILE in lab_fired(_from(*sources, user=ANONYMOUS))


@pytest.mark.parametrize(
    "sources",
    [
        ("185.220.101.35",),
        ("185.220.101.3",),
        ("198.51.10.23",),
        ("198.51.1000.1",),
        ("2001:db8:bee::1",),
        ("127.0.0.1",),
    ],
)
def test_look_alike_addresses_do_not_alert(sources: tuple[str, ...]) -> None:
    assert HOSTILE not in lab_fired(_from(*sources))


def test_a_padded_forwarded_chain_cannot_hide_the_peer_silently() -> None:
    padded = tuple(f"10.0.0.{n}" for n in range(MAX_SOURCE_ADDRESSES)) + ("185.220.101.34",)
    rules = lab_fired(_from(*padded))
    assert PADDED in rules  # the peer sits beyond the positions compared one by one ...
    assert HOSTILE not in rules  # ... and an exact address is only looked for there
    # A listed range is searched in the whole chain.
    assert HOSTILE in lab_fired(_from(*padded[:-1], "198.51.100.1"))
    assert PADDED not in lab_fired(_from(*padded[1:]))


def test_the_alert_names_the_caller_the_chain_and_the_request() -> None:
    request = Request(
        service_account("default", "default"), "list", "secrets", None, source_ips=("185.220.101.34", "127.0.0.1")
    )
    (alert,) = [a for a in lab_engine().process(request.line()) if a.rule == HOSTILE]
    assert alert.priority == "Critical"
    assert "user=system:serviceaccount:default:default" in alert.output
    assert 'sources=["185.220.101.34","127.0.0.1"]' in alert.output
    assert "verb=list uri=/api/v1/secrets" in alert.output
    assert "guardduty:Discovery:Kubernetes/TorIPCaller" in alert.tags


def test_without_a_list_nothing_is_hostile() -> None:
    empty = lab_engine(hostile=())
    assert HOSTILE not in lab_fired(_from("185.220.101.34"), engine=empty)
