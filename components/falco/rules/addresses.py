"""Hostile source addresses as the operator lists them, turned into text a Falco condition can match.

Falco has no CIDR operator for a plugin's string field, so a range becomes text to look for in what the
API server writes. The audit event's ``sourceIPs`` hold Go's ``net.IP.String()`` of each address
(k8s.io/apimachinery util/net ``SourceIPs``: every valid ``X-Forwarded-For`` entry, then ``X-Real-Ip``,
then the connection's own peer, last and unspoofable): IPv4 in dotted decimal without leading zeros, an
IPv4-mapped IPv6 address as plain IPv4, IPv6 in RFC 5952 form (lower case, no leading zeros, the first
longest run of two or more zero groups written ``::``), which is also what Python's ``ipaddress`` writes.

So, with the JSON text of the ``sourceIPs`` array in hand (``["185.220.101.34","127.0.0.1"]``):

- an address is matched exactly (``"185.220.101.34"``, quotes included);
- an IPv4 range aligned on an octet is the text its addresses start with (``10.1.0.0/16``: ``"10.1.``);
  another length is cut into aligned ranges, or into addresses from /25 on (``10.0.0.0/20``: 16 ranges
  ``"10.0.0.`` .. ``"10.0.15.``; ``192.0.2.0/30``: 4 addresses);
- an IPv6 range aligned on a 16-bit group is the text of its groups and a colon (``2001:db8::/32``:
  ``"2001:db8:``), which holds only when none of those groups is zero: with a zero group the address
  may print ``::`` inside the range's own groups, so such a range is refused; a range of at most 256
  addresses is listed address by address.

Anything that is not an address or a CIDR (host names, scope zones, masks, host bits set) is refused, naming
the setting and the entry, and so is a list that would match more text than the bounds below allow.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ...errors import ConfigError

MAX_TERMS_PER_ENTRY: Final = 256
"""At most this many addresses or ranges from one entry (a /25 is 128 addresses, a /17 128 ranges)."""
MAX_ADDRESSES: Final = 10_000
"""Exact addresses in all: Falco matches them with a set, so many cost little (a Tor exit list is ~2,000)."""
MAX_PREFIXES: Final = 256
"""Text ranges in all: each is a substring search per audit event."""

_PREFIX = re.compile(r"^[^/\s]+/(0|[1-9]\d{0,2})$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SourceMatch:
    """What to look for: addresses as the API server prints them, and the text ranges' addresses start with."""

    addresses: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.addresses or self.prefixes)


def go_ip_string(address: IPAddress) -> str:
    """``net.IP.String()`` of the address, as the audit log holds it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if isinstance(address, ipaddress.IPv6Address):
        return address.compressed
    return str(address)


def _parse(entry: object, setting: str) -> IPAddress | IPNetwork:
    if not isinstance(entry, str) or not entry or entry != entry.strip():
        raise ConfigError(setting, f"{entry!r} is not an IP address or CIDR")
    if "%" in entry:
        raise ConfigError(setting, f"{entry!r}: an IPv6 scope zone never appears in the audit log's addresses")
    try:
        if "/" in entry:
            if not _PREFIX.match(entry):
                raise ValueError("the prefix length must be a number such as /24 (no netmask)")
            network = ipaddress.ip_network(entry, strict=True)
            mapped = network.network_address.ipv4_mapped if isinstance(network, ipaddress.IPv6Network) else None
            if mapped is not None and network.prefixlen >= 96:
                return ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")
            return network
        address = ipaddress.ip_address(entry)
    except ValueError as err:
        raise ConfigError(setting, f"{entry!r} is not an IP address or CIDR ({err})") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _aligned(network: IPNetwork, group_bits: int) -> list[IPNetwork]:
    """`network` cut into ranges whose length is a multiple of `group_bits` (its own if it is one already)."""
    length = network.prefixlen
    target = max(group_bits, -(-length // group_bits) * group_bits)
    return list(network.subnets(new_prefix=target)) if target != length else [network]


def _terms(entry: str, parsed: IPAddress | IPNetwork, setting: str) -> tuple[list[str], list[str]]:
    """(exact addresses, text prefixes) for one entry."""
    if isinstance(parsed, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return [go_ip_string(parsed)], []
    bits = parsed.max_prefixlen
    group = 8 if parsed.version == 4 else 16
    if parsed.num_addresses <= MAX_TERMS_PER_ENTRY and (parsed.version == 6 or parsed.prefixlen > bits - group):
        # A small range: its addresses (every IPv4 /25../32, IPv6 /120../128).
        return [go_ip_string(a) for a in parsed], []
    parts = _aligned(parsed, group)
    if len(parts) > MAX_TERMS_PER_ENTRY:
        raise ConfigError(
            setting,
            f"{entry!r} would be matched as {len(parts)} text ranges (at most {MAX_TERMS_PER_ENTRY} per entry): "
            f"give a range aligned on a {group}-bit boundary, e.g. /{parts[0].prefixlen - group}",
        )
    prefixes = []
    for part in parts:
        if parsed.version == 4:
            octets = str(part.network_address).split(".")[: part.prefixlen // 8]
            prefixes.append(".".join(octets) + ".")
        else:
            groups = part.network_address.exploded.split(":")[: part.prefixlen // 16]
            if any(int(g, 16) == 0 for g in groups):
                raise ConfigError(
                    setting,
                    f"{entry!r}: the API server writes some addresses of {part} with '::' inside the range's own "
                    "groups (one of them is zero), which a text match cannot follow; list the addresses, or a range "
                    "whose leading groups are not zero",
                )
            prefixes.append(":".join(format(int(g, 16), "x") for g in groups) + ":")
    return [], prefixes


def source_match(entries: Sequence[str], setting: str) -> SourceMatch:
    """The addresses and text ranges for `entries`; ConfigError naming `setting` and the entry when one cannot be
    matched faithfully, or when the list exceeds the bounds."""
    if isinstance(entries, str) or not isinstance(entries, Sequence):
        raise ConfigError(setting, "must be a list of IP addresses or CIDRs, not one string")
    addresses: dict[str, None] = {}
    prefixes: dict[str, None] = {}
    for entry in entries:
        exact, ranges = _terms(str(entry), _parse(entry, setting), setting)
        addresses.update(dict.fromkeys(exact))
        prefixes.update(dict.fromkeys(ranges))
    if len(addresses) > MAX_ADDRESSES:
        raise ConfigError(setting, f"lists {len(addresses)} addresses; at most {MAX_ADDRESSES}")
    if len(prefixes) > MAX_PREFIXES:
        raise ConfigError(
            setting, f"needs {len(prefixes)} text ranges; at most {MAX_PREFIXES} (use fewer, wider or aligned ranges)"
        )
    return SourceMatch(tuple(addresses), tuple(prefixes))
