"""The egress policy: which addresses and ports Kiosque may open a router connection to.

Owners type their router's address and port, and Kiosque's server connects there: unchecked, any
owner could make the server talk to the operator's own machines (a mail server on the loopback,
Redis on the LAN, the cloud metadata service). So every router connection goes through
`EgressPolicy.connect`: the name is looked up once, within the router timeout; every address it
resolves to must be allowed, or none is used; the connection is then made to those checked
addresses, never to the name again (a second lookup could answer differently).

Allowed without any setting: globally routable unicast addresses, on ports 8728 (api) and 8729
(api-ssl). Refused unless the operator allows their network: loopback, private ranges (RFC 1918,
IPv6 unique local), link-local (169.254.169.254, the cloud metadata address, included), shared
address space (CGNAT, 100.64.0.0/10), documentation, benchmarking and reserved ranges. Refused
always, whatever the operator allows: the unspecified address (0.0.0.0 and :: reach the server
itself), multicast and broadcast. IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d)
addresses are judged by the IPv4 address they stand for; a 6to4 address also by the one it carries.

The operator's settings (docs/deployment.md#egress-policy): ROUTER_ALLOWED_NETWORKS, CIDR networks
allowed although not public (a VPN range, a LAN), and ROUTER_ALLOWED_PORTS, the complete list of
ports and port ranges allowed ("8728,8729" by default).

No Flask and no database here: the app builds one policy from its configuration at start-up.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = "8728,8729"  # RouterOS api and api-ssl
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class EgressRefused(Exception):
    """The policy refuses this connection. The text never says more than that.

    ``reason`` is for the code that must tell the owner which field to fix: "address", "port"
    or "credentials" (a control character in the API user name or password).
    """

    def __init__(self, reason: str) -> None:
        super().__init__("refused by the server's policy")
        self.reason = reason


def parse_networks(value: str | Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """CIDR networks from "10.8.0.0/24, fd00:8::/64" (or a list); a bare address is a /32 or /128.

    Raises ValueError on anything else, host bits set included (10.8.0.1/24 is most likely a typo).
    """
    networks = []
    for item in _items(value):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError:
            raise ValueError(f"not an IP network: {item!r}") from None
    return tuple(networks)


def parse_ports(value: str | int | Iterable[str | int] | None) -> tuple[tuple[int, int], ...]:
    """Ports and ranges from "8728,8729,1024-65535" (or a list), as (first, last) pairs.

    Raises ValueError on anything but ports 1 to 65535 and ranges whose first port comes first.
    """
    ranges = []
    for item in _items(value):
        first, _, last = item.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"not a port or port range: {item!r}") from None
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"not a port or port range: {item!r}")
        ranges.append((low, high))
    return tuple(ranges)


def _items(value: str | int | Iterable[str | int] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        value = str(value).split(",")
    return [str(item).strip() for item in value if str(item).strip()]


def _judged(ip: IPAddress) -> tuple[IPAddress, ...]:
    """The addresses that decide for ``ip``: the IPv4 address a mapped or NAT64 address stands for."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return (ip.ipv4_mapped,)
        if ip in NAT64:
            return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
        if ip.sixtofour is not None:
            return (ip, ip.sixtofour)
    return (ip,)


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast: what the policy allows without the operator's say."""
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


@dataclass(frozen=True)
class EgressPolicy:
    """Where router connections may go: public addresses and ``networks``, on ``ports`` only.

    ``excluded`` networks are refused whatever else allows them; without ``public``, only
    ``networks`` are allowed. The app keeps two policies (portal/config.py): one for the
    addresses owners type, which excludes Kiosque's WireGuard tunnel network (no owner may aim
    at another owner's tunnel address), and one for tunnelled routers, which allows that
    network only, the hub's own address excluded.
    """

    networks: tuple[IPNetwork, ...] = ()
    ports: tuple[tuple[int, int], ...] = parse_ports(DEFAULT_PORTS)
    excluded: tuple[IPNetwork, ...] = ()
    public: bool = True

    @classmethod
    def from_settings(cls, networks: str | Iterable[str] | None = "",
                      ports: str | int | Iterable[str | int] | None = DEFAULT_PORTS) -> EgressPolicy:
        """The policy from the operator's two settings; ValueError names a wrong item."""
        return cls(networks=parse_networks(networks), ports=parse_ports(ports))

    def __repr__(self) -> str:
        excluded = ", ".join(str(network) for network in self.excluded)
        return (f"EgressPolicy(networks={self.describe_networks()!r}, ports={self.describe_ports()!r}, "
                f"excluded={excluded!r}, public={self.public})")

    def describe_networks(self) -> str:
        return ", ".join(str(network) for network in self.networks)

    def describe_ports(self) -> str:
        """The allowed ports as an owner reads them: "8728, 8729" or "8728, 8729, 1024-65535"."""
        return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in self.ports)

    def allows_port(self, port: int) -> bool:
        return any(low <= port <= high for low, high in self.ports)

    def allows_address(self, address: str | IPAddress) -> bool:
        """Whether a connection to this IP address (a string as getaddrinfo gives it) is allowed."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return all(self._allows(judged) for judged in _judged(ip))

    def _allows(self, ip: IPAddress) -> bool:
        if ip.is_unspecified or ip.is_multicast or ip == BROADCAST or _within(ip, self.excluded):
            return False
        return _within(ip, self.networks) or (self.public and is_public(ip))

    def resolve(self, host: str, port: int, timeout: float) -> list[tuple[int, tuple]]:
        """The (family, socket address) pairs to connect to, each one checked.

        Raises EgressRefused when the port, or any address the name resolves to, is refused (a
        name that also resolves to one refused address is refused whole); OSError when the name
        does not resolve; TimeoutError when the lookup takes longer than ``timeout``.
        """
        if not self.allows_port(port):
            raise EgressRefused("port")
        infos = _getaddrinfo(unbracketed(host), port, timeout)
        targets: list[tuple[int, tuple]] = []
        for family, _type, _proto, _name, sockaddr in infos:
            if not self.allows_address(sockaddr[0]):
                raise EgressRefused("address")
            if (family, sockaddr) not in targets:
                targets.append((family, sockaddr))
        if not targets:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        return targets

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to ``host`` through the policy: looked up once, checked, then connected.

        The lookup and the connection share ``timeout``; the addresses are tried in the order of
        the lookup, each with the time left. Raises as `resolve`, or the last connection error.
        """
        deadline = time.monotonic() + timeout
        error: OSError = TimeoutError("timed out")
        for family, sockaddr in self.resolve(host, port, timeout):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            try:
                sock.settimeout(left)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            return sock
        raise error


def _within(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(ip.version == network.version and ip in network for network in networks)


def unbracketed(host: str) -> str:
    """An IPv6 literal as a URL writes it ([2001:db8::1]) is looked up without its brackets."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _getaddrinfo(host: str, port: int, timeout: float) -> list[tuple]:
    """getaddrinfo for TCP, within ``timeout`` (the system resolver has no timeout of its own).

    An IP address is read as such, without any lookup. A name is looked up in a daemon thread;
    after ``timeout`` the caller gets TimeoutError and the thread ends whenever the resolver does.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
                                  flags=socket.AI_NUMERICHOST)
    outcome: dict[str, object] = {}
    done = threading.Event()

    def look_up() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            outcome["error"] = exc
        except UnicodeError:  # an empty or over-long label ("a..b"): no such name
            outcome["error"] = socket.gaierror(socket.EAI_NONAME, "not a valid host name")
        finally:
            done.set()

    threading.Thread(target=look_up, name="router-lookup", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError("name lookup timed out")
    if "error" in outcome:
        error = outcome["error"]
        assert isinstance(error, OSError)
        raise error
    return outcome["infos"]  # type: ignore[return-value]
