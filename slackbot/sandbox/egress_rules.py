"""The egress allowlist of task sandboxes and which addresses count as public. Pure, standard library only.

The bot imports it to validate allowlists; the proxy image carries it beside egress_proxy.py.

Allowlist entries, separated by commas or newlines (`#` starts a comment):
  example.com             that host only
  *.example.com           its subdomains at any depth, not example.com itself
  .example.com            example.com and its subdomains
  192.0.2.7  [2001:db8::7]  10.1.0.0/16  [fd00::/8]     addresses and CIDR networks
  ENTRY:PORT              any of the above, on that port only; without a port: 80 and 443
A host name is allowed when a name entry matches it and every address it resolves to is public or covered
by an address entry for the same port: a name alone never leads to loopback, private, link-local, shared
(CGNAT), multicast, reserved or cloud-metadata addresses. An IP literal needs an address entry.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = (80, 443)
PORT_PATTERN = re.compile(r"[0-9]{1,5}")

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")  # a last label like this makes URL parsers read an IPv4


def _networks(*texts: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


# The first kind that matches names the refusal, so metadata comes before link-local.
METADATA = _networks("169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32", "168.63.129.16/32")
_SPECIAL = (
    ("a cloud metadata address", METADATA),
    ("unspecified", _networks("0.0.0.0/8", "::/128")),
    ("loopback", _networks("127.0.0.0/8", "::1/128")),
    ("private", _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
    ("link-local", _networks("169.254.0.0/16", "fe80::/10")),
    ("shared (CGNAT)", _networks("100.64.0.0/10")),
    ("multicast", _networks("224.0.0.0/4", "ff00::/8")),
    ("reserved", _networks("192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
                           "240.0.0.0/4", "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
                           "fec0::/10")),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_kind(address: IPAddress) -> str | None:
    """Why a name alone may not lead to `address`, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address_kind(address.ipv4_mapped)
        embedded = address.sixtofour or (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
                                         if address in _NAT64 else None)
        if embedded is not None and (kind := address_kind(embedded)):
            return f"{kind} (embedded {embedded})"
    for kind, networks in _SPECIAL:
        if any(address in network for network in networks):
            return kind
    return None if address.is_global else "not global"


def normalize_host(text: str) -> str | IPAddress:
    """A host as a lower-case IDNA name without trailing dot, or as an address; ValueError says why not."""
    if text.startswith("[") and text.endswith("]"):
        return _ipv6_literal(text[1:-1])
    try:
        name = text.lower().encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"{shown(text)} is not a valid host name") from None
    name = name[:-1] if name.endswith(".") else name
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"{shown(text)} is not a valid host name")
    try:
        return ipaddress.IPv4Address(name)
    except ValueError:
        pass
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        raise ValueError(f"{shown(text)} is not a canonical IP address")
    return name


def _ipv6_literal(text: str) -> IPAddress:
    if "%" in text:
        raise ValueError("zone ids are not allowed in addresses")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f"[{shown(text)}] is not an IPv6 address") from None
    return address.ipv4_mapped or address  # the IPv4 address it reaches, checked as such


def reached(address: IPAddress) -> IPAddress:
    """The address a connection to `address` reaches: an IPv4-mapped one reaches its IPv4 address."""
    return getattr(address, "ipv4_mapped", None) or address


def _port_matches(allowed: int | None, port: int) -> bool:
    return port in DEFAULT_PORTS if allowed is None else port == allowed


def _with_port(text: str, port: int | None) -> str:
    return text if port is None else f"{text}:{port}"


def bracketed(address: IPAddress | str) -> str:
    return f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)


@dataclass(frozen=True)
class NameRule:
    name: str
    subdomains: bool = False
    itself: bool = True
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        if not _port_matches(self.port, port):
            return False
        return (self.itself and host == self.name) or (self.subdomains and host.endswith("." + self.name))

    def __str__(self) -> str:
        prefix = ("." if self.itself else "*.") if self.subdomains else ""
        return _with_port(prefix + self.name, self.port)


@dataclass(frozen=True)
class AddressRule:
    network: IPNetwork
    port: int | None = None

    def covers(self, address: IPAddress, port: int) -> bool:
        return _port_matches(self.port, port) and address in self.network

    def __str__(self) -> str:
        single = self.network.num_addresses == 1
        text = str(self.network.network_address) if single else str(self.network)
        return _with_port(f"[{text}]" if self.network.version == 6 else text, self.port)


@dataclass(frozen=True)
class Allowlist:
    names: tuple[NameRule, ...] = ()
    addresses: tuple[AddressRule, ...] = ()

    def rule_for_name(self, name: str, port: int) -> NameRule | None:
        return next((rule for rule in self.names if rule.matches(name, port)), None)

    def rule_for_address(self, address: IPAddress, port: int) -> AddressRule | None:
        return next((rule for rule in self.addresses if rule.covers(address, port)), None)

    def check(self, text: str, port: int) -> tuple[str | IPAddress, NameRule | AddressRule]:
        """The normalised host and the entry allowing it, or ValueError; names still need address_refusal()."""
        host = normalize_host(text)
        if not isinstance(host, str):
            address_rule = self.rule_for_address(host, port)
            if address_rule is None:
                raise ValueError(f"{bracketed(host)}:{port} is not covered by an address entry")
            return host, address_rule
        name_rule = self.rule_for_name(host, port)
        if name_rule is None:  # unlisted names are never resolved: DNS queries could carry data out
            raise ValueError(f"{host}:{port} is not in the allowlist")
        return host, name_rule

    def address_refusal(self, name: str, addresses: list[IPAddress], port: int) -> str | None:
        """Why `name` may not be reached at these (resolved) addresses; None when every one is fine."""
        for address in addresses:
            kind = address_kind(address)
            if kind and not self.rule_for_address(address, port):
                return f"{name} resolves to {address}, {kind}: only an address entry can allow that"
        return None

    def entries(self) -> list[str]:
        return [str(rule) for rule in (*self.names, *self.addresses)]


def parse_allowlist(text: str) -> tuple[Allowlist, list[str]]:
    """The rules in `text`, and one message per entry that is not valid (those entries are left out)."""
    names: list[NameRule] = []
    addresses: list[AddressRule] = []
    errors: list[str] = []
    for entry in _entries(text):
        try:
            rule = parse_entry(entry)
        except ValueError as error:
            errors.append(f"{shown(entry)}: {error}")
            continue
        if isinstance(rule, AddressRule):
            addresses.append(rule)
        else:
            names.append(rule)
    return Allowlist(tuple(dict.fromkeys(names)), tuple(dict.fromkeys(addresses))), errors


def _entries(text: str) -> Iterator[str]:
    for line in text.splitlines():
        for entry in line.split("#", 1)[0].split(","):
            if entry.strip():
                yield entry.strip()


def parse_entry(entry: str) -> NameRule | AddressRule:
    host, port = _split_entry(entry)
    if host.startswith("[") and host.endswith("]"):
        return AddressRule(_network(host[1:-1]), port)
    if "/" in host or ":" in host:
        return AddressRule(_network(host), port)
    if host.startswith("*."):
        return NameRule(_entry_name(host[2:]), subdomains=True, itself=False, port=port)
    if host.startswith("."):
        return NameRule(_entry_name(host[1:]), subdomains=True, port=port)
    value = normalize_host(host)
    if isinstance(value, str):
        return NameRule(value, port=port)
    return AddressRule(ipaddress.ip_network(value), port)


def _split_entry(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        close = entry.find("]") + 1
        if close == 0 or entry[close:] and not entry[close:].startswith(":"):
            raise ValueError("write IPv6 addresses as [ADDRESS] or [ADDRESS]:PORT")
        host, port = entry[:close], entry[close + 1:] if entry[close:] else None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host, port = entry, None
    if port is None:
        return host, None
    if not PORT_PATTERN.fullmatch(port) or not 0 < int(port) < 65536:
        raise ValueError(f"{shown(port)} is not a port number")
    return host, int(port)


def _network(text: str) -> IPNetwork:
    if "%" in text:
        raise ValueError("zone ids are not allowed in addresses")
    try:
        network = ipaddress.ip_network(text)
    except ValueError as error:
        raise ValueError(f"not an address or CIDR network ({error})") from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        raise ValueError("write IPv4 addresses in IPv4 form")
    return network


def _entry_name(text: str) -> str:
    value = normalize_host(text)
    if not isinstance(value, str):
        raise ValueError("wildcards apply to host names, not to addresses")
    return value


def shown(text: str, limit: int = 100) -> str:
    """Client text made safe for a log line or a reply: printable ASCII, bounded."""
    safe = text[:limit].encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return safe + ("..." if len(text) > limit else "")
