"""Tunnel addresses: the operator's network, the hub's address in it, one address per router.

The hub takes the network's first host; routers take the next free ones. An address stays
with its router for as long as the router exists (the caller passes every address still held,
and `allocate` never returns one of them), so a router's API address never silently becomes
another router's.

The network is the operator's choice and has no default: whatever Kiosque picked could collide
with a LAN behind some router. What is refused, and why:

- not IPv4, or host bits set (``10.77.0.1/24`` instead of ``10.77.0.0/24``);
- larger than /16 (more than 65,534 routers: a typo) or smaller than /30 (no router address);
- outside private space: a public network would hide real Internet hosts from every router;
  allowed are RFC 1918 (10/8, 172.16/12, 192.168/16) and, for test beds, the RFC 5737
  documentation ranges and the RFC 2544 benchmarking range 198.18/15;
- 100.64.0.0/10, the carrier-grade NAT range (RFC 6598): the routers this feature is for
  often have their WAN address there, and a tunnel network on top of it breaks their uplink;
- 192.168.88.0/24, the LAN of MikroTik's default configuration: most routers have it;
- anything in ``avoid`` (networks the caller knows are in use, e.g. the server's own).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from portal.wireguard.errors import AddressPoolExhausted, InvalidNetwork

MIN_PREFIX = 16
MAX_PREFIX = 30
ALLOWED_SPACE: tuple[IPv4Network, ...] = tuple(IPv4Network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # RFC 5737 documentation
    "198.18.0.0/15",  # RFC 2544 benchmarking
))
REFUSED: tuple[tuple[IPv4Network, str], ...] = (
    (IPv4Network("100.64.0.0/10"), "the carrier-grade NAT range, where routers behind a carrier have their WAN address"),
    (IPv4Network("192.168.88.0/24"), "the LAN of MikroTik's default configuration"),
)


def tunnel_network(value: str | IPv4Network, *, avoid: Iterable[str | IPv4Network] = ()) -> IPv4Network:
    """The operator's tunnel network, validated; InvalidNetwork says what is wrong."""
    text = str(value).strip()
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise InvalidNetwork(f"{text!r} is not a network such as 10.77.0.0/24") from None
        raise InvalidNetwork(f"{text} has host bits set: the network is {loose}") from None
    if not isinstance(network, IPv4Network):
        raise InvalidNetwork(f"{network} is IPv6: the tunnel network must be IPv4 (RouterOS API over IPv4)")
    if "/" not in text:
        raise InvalidNetwork(f"{text} has no prefix length: write it as {network.network_address}/24, for instance")
    if network.prefixlen < MIN_PREFIX:
        raise InvalidNetwork(f"{network} is larger than /{MIN_PREFIX}")
    if network.prefixlen > MAX_PREFIX:
        raise InvalidNetwork(f"{network} is smaller than /{MAX_PREFIX}: no address left for a router")
    for refused, why in REFUSED:
        if network.overlaps(refused):
            raise InvalidNetwork(f"{network} overlaps {refused}, {why}")
    if not any(network.subnet_of(space) for space in ALLOWED_SPACE):
        raise InvalidNetwork(f"{network} is not private address space (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)")
    for other in avoid:
        other_network = ipaddress.ip_network(str(other), strict=False)
        if isinstance(other_network, IPv4Network) and network.overlaps(other_network):
            raise InvalidNetwork(f"{network} overlaps {other_network}, already in use")
    return network


def hub_address(network: IPv4Network) -> IPv4Interface:
    """The hub's address with the network's prefix (its first host): ``10.77.0.1/24``."""
    return IPv4Interface(f"{network.network_address + 1}/{network.prefixlen}")


def router_capacity(network: IPv4Network) -> int:
    """How many routers the network holds (every host but the hub's)."""
    return network.num_addresses - 3


def allocate(network: IPv4Network, taken: Iterable[str | IPv4Address | IPv4Interface]) -> IPv4Address:
    """The lowest router address of `network` not in `taken` (every address a router still holds)."""
    held = {int(_host(item)) for item in taken}
    first = int(network.network_address) + 2  # after the network address and the hub
    last = int(network.broadcast_address) - 1
    for candidate in range(first, last + 1):  # bounded by the network's size (/16 at most)
        if candidate not in held:
            return IPv4Address(candidate)
    raise AddressPoolExhausted(str(network), router_capacity(network))


def router_address(network: IPv4Network, address: str | IPv4Address | IPv4Interface) -> IPv4Address:
    """`address` as a router address of `network`, or InvalidNetwork (outside, hub, network, broadcast)."""
    host = _host(address)
    if host not in network:
        raise InvalidNetwork(f"{host} is outside the tunnel network {network}")
    if host in (network.network_address, network.broadcast_address):
        raise InvalidNetwork(f"{host} is not a host address of {network}")
    if host == hub_address(network).ip:
        raise InvalidNetwork(f"{host} is the hub's address")
    return host


def router_interface(network: IPv4Network, address: str | IPv4Address) -> IPv4Interface:
    """The router's tunnel address with the network's prefix, as the router's /ip address holds it."""
    return IPv4Interface(f"{router_address(network, address)}/{network.prefixlen}")


def peer_allowed_ips(address: str | IPv4Address) -> tuple[IPv4Network, ...]:
    """What the hub accepts from (and routes to) one router: its own address only, as a /32."""
    return (IPv4Network(f"{_host(address)}/32"),)


def _host(value: str | IPv4Address | IPv4Interface) -> IPv4Address:
    if isinstance(value, IPv4Interface):
        return value.ip
    if isinstance(value, IPv4Address):
        return value
    text = str(value).strip()
    try:
        if text.endswith("/32") or "/" not in text:  # the common case, about ten times faster
            return IPv4Address(text.removesuffix("/32"))
        return IPv4Interface(text).ip
    except ValueError:
        raise InvalidNetwork(f"{value!r} is not an IPv4 address") from None
