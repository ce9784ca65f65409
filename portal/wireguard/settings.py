"""The operator's hub settings: the public endpoint routers dial, the tunnel network, the interface.

Read once at start-up (`portal/config.py`, `PORTAL_VPN_*`), checked here so that a typo stops
Kiosque with the reason instead of reaching every router's script. The endpoint's host is an IP
address or a DNS name, nothing else: it is written into RouterOS scripts.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network

from portal.wireguard.addresses import hub_address, tunnel_network
from portal.wireguard.errors import InvalidEndpoint
from portal.wireguard.interface import interface_name

DEFAULT_INTERFACE = "kiosque0"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\Z")


def endpoint_host(value: str) -> str:
    """An IP address as Python writes it, or a lower-case DNS name; InvalidEndpoint otherwise."""
    text = str(value).strip()
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    host = text.rstrip(".").lower()
    if not _HOSTNAME.match(host):
        raise InvalidEndpoint(f"{text!r} is neither an IP address nor a DNS name")
    return host


def port_number(value: int | str, what: str) -> int:
    """A UDP or TCP port, 1 to 65535; InvalidEndpoint otherwise."""
    try:
        port = int(str(value).strip())
    except ValueError:
        raise InvalidEndpoint(f"{what} {value!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise InvalidEndpoint(f"{what} {port} is not between 1 and 65535")
    return port


@dataclass(frozen=True)
class Endpoint:
    """Where routers reach the hub from the Internet: ``hub.example.com:51820``."""

    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> Endpoint:
        """``host:port``, ``a.b.c.d:port`` or ``[IPv6]:port``; InvalidEndpoint says what is wrong."""
        text = str(value).strip()
        host, colon, port = text.rpartition(":")
        if not colon or not host or (":" in host and not host.startswith("[")):
            raise InvalidEndpoint(f"{text!r} is not host:port (an IPv6 address goes in brackets: [2001:db8::1]:51820)")
        return cls(host=endpoint_host(host), port=port_number(port, "endpoint port"))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class HubSettings:
    """The hub as the operator set it up; the listen port defaults to the endpoint's."""

    endpoint: Endpoint
    network: IPv4Network
    listen_port: int
    interface: str = DEFAULT_INTERFACE

    @classmethod
    def from_settings(cls, endpoint: str, network: str, interface: str = DEFAULT_INTERFACE,
                      listen_port: int | str | None = None) -> HubSettings:
        """Checked settings; InvalidEndpoint, InvalidNetwork or InvalidInterfaceName name the wrong one."""
        parsed = Endpoint.parse(endpoint)
        port = parsed.port if listen_port in (None, "") else port_number(listen_port, "listen port")
        return cls(endpoint=parsed, network=tunnel_network(network), listen_port=port,
                   interface=interface_name(str(interface)))

    @property
    def address(self) -> IPv4Interface:
        """The hub's own tunnel address, with the network's prefix."""
        return hub_address(self.network)
