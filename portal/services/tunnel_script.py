"""The WireGuard part of the router script ('Installer Kiosque'), for RouterOS 7.

The router dials out to the hub, so it works behind carrier NAT: the hub is the interface's
only peer, with the hub's endpoint, the hub's tunnel address as its only allowed address and a
persistent keepalive that keeps the NAT mapping open. Kiosque then reaches the router's API at
its tunnel address.

RouterOS syntax (RouterOS 7; RouterOS 6 has no WireGuard), from MikroTik's manual:
- https://help.mikrotik.com/docs/display/ROS/WireGuard — `/interface wireguard` (name,
  private-key, listen-port, mtu) and `/interface wireguard peers` (interface, public-key,
  allowed-address, endpoint-address, endpoint-port, persistent-keepalive);
- https://help.mikrotik.com/docs/display/ROS/Filter — `/ip firewall filter` (chain, action,
  protocol, in-interface, src-address, dst-port, place-before, comment);
- https://help.mikrotik.com/docs/display/ROS/Services — `/ip service` (disabled, port, address).

Decisions, for whoever changes them:
- Running the script twice leaves the router as running it once: each object is found by name
  (or by the interface it belongs to), added only when missing, then `set` to the wanted values;
  the firewall rules carry the comment `kiosque-tunnel` and are removed before being added.
- The API service's port is never changed (owners forward it, Mikhmon uses it). The tunnel
  side is restricted by address only: the firewall accepts the API from the hub's tunnel
  address through the tunnel interface and drops everything else arriving through it, input
  and forward (nothing from the tunnel reaches the router's LAN). These rules go on top of the
  filter list, before a default configuration's "drop all not coming from LAN".
- When the owner already restricted the API service to some addresses, the hub's address is
  added to that list; an unrestricted service stays unrestricted.
- Values: keys are checked as WireGuard keys, addresses parsed, the endpoint host is an IP
  address or a DNS name, the interface name a short token; all strings go through
  `script_text.script_string`, like the rest of the script.
- The router keeps RouterOS's default listen port: it only dials out, nothing needs to reach it.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface

from portal.services.script_text import ScriptValueError, allow_on_service, script_string
from portal.wireguard.errors import InvalidEndpoint, InvalidInterfaceName, InvalidKey
from portal.wireguard.interface import KEEPALIVE_SECONDS, interface_name
from portal.wireguard.keys import KeyPair, validate_public_key
from portal.wireguard.settings import endpoint_host, port_number

DEFAULT_INTERFACE = "kiosque"
FIREWALL_COMMENT = "kiosque-tunnel"
API_SERVICES = frozenset({"api", "api-ssl"})


def _top_rule(rule: str, first: str = "kqTop") -> str:
    """One line that adds `rule` before the first static filter rule (or at the end of an empty list)."""
    return (f"{{:local {first} [/ip firewall filter find where dynamic=no]; "
            f":if ([:len ${first}] = 0) do={{/ip firewall filter add {rule}}} "
            f"else={{/ip firewall filter add {rule} place-before=[:pick ${first} 0]}}}}")


def tunnel_lines(
    *,
    private_key: str,
    address: IPv4Interface | str,
    hub_public_key: str,
    hub_host: str,
    hub_port: int,
    hub_address: IPv4Address | str,
    interface: str = DEFAULT_INTERFACE,
    service: str = "api",
    api_ports: Iterable[int] = (8728,),
    keepalive: int = KEEPALIVE_SECONDS,
) -> list[str]:
    """The script lines that put the router on Kiosque's WireGuard hub.

    `address` is the router's tunnel address with the network's prefix (``10.77.0.2/24``);
    `hub_address` the hub's tunnel address; `service` the API service Kiosque uses ("api" or
    "api-ssl") and `api_ports` the port(s) it connects to. Raises ScriptValueError when a value
    cannot be written safely.
    """
    try:
        KeyPair.from_private(private_key)
        hub_key = validate_public_key(hub_public_key)
        name = interface_name(interface)
        host, port = endpoint_host(hub_host), port_number(hub_port, "hub port")
    except (InvalidKey, InvalidInterfaceName, InvalidEndpoint) as exc:
        raise ScriptValueError(str(exc)) from None
    try:
        router = IPv4Interface(str(address).strip())
        hub = IPv4Address(str(hub_address).strip().split("/")[0])
    except ValueError:
        raise ScriptValueError(f"tunnel address {address!r} or hub address {hub_address!r} is not IPv4") from None
    if router.network.prefixlen == 32 or hub not in router.network or hub == router.ip:
        raise ScriptValueError(f"hub address {hub} must be another host of the router's network {router.network}")
    if service not in API_SERVICES:
        raise ScriptValueError(f"unknown API service {service!r}")
    ports = sorted({int(p) for p in api_ports})
    if not ports or not all(1 <= p <= 65535 for p in ports):
        raise ScriptValueError(f"API ports {ports} are not valid ports")
    if not 10 <= int(keepalive) <= 3600:
        raise ScriptValueError(f"keepalive {keepalive} is not between 10 and 3600 seconds")

    iface, key, comment = script_string(name), script_string(private_key.strip()), script_string("kiosque")
    hub_key_s, endpoint = script_string(hub_key), script_string(host)
    hub_32, tag = f"{hub}/32", script_string(FIREWALL_COMMENT)
    dst_ports = ",".join(str(p) for p in ports)
    accept = (f"chain=input action=accept protocol=tcp in-interface={iface} src-address={hub_32} "
              f"dst-port={dst_ports} comment={tag}")
    drop_input = f"chain=input action=drop in-interface={iface} comment={tag}"
    drop_forward = f"chain=forward action=drop in-interface={iface} comment={tag}"
    where_iface = f"where interface={iface}"
    return [
        "# Kiosque: WireGuard tunnel to the Kiosque hub (RouterOS 7)",
        f":if ([:len [/interface wireguard find name={iface}]] = 0) do={{"
        f"/interface wireguard add name={iface} private-key={key} comment={comment}}}",
        f"/interface wireguard set [find name={iface}] private-key={key} disabled=no comment={comment}",
        f"/interface wireguard peers remove [find {where_iface} and public-key!={hub_key_s}]",
        f":if ([:len [/interface wireguard peers find {where_iface}]] = 0) do={{"
        f"/interface wireguard peers add interface={iface} public-key={hub_key_s} allowed-address={hub_32}}}",
        f"/interface wireguard peers set [find {where_iface}] endpoint-address={endpoint} endpoint-port={port} "
        f"allowed-address={hub_32} persistent-keepalive={int(keepalive)}s disabled=no comment={comment}",
        f":if ([:len [/ip address find {where_iface}]] = 0) do={{"
        f"/ip address add address={router} interface={iface} comment={comment}}}",
        f"/ip address set [find {where_iface}] address={router} comment={comment}",
        "# Kiosque: API through the tunnel, from the hub only (the service's port is left as it is)",
        f"/ip service set {service} disabled=no",
        allow_on_service(service, hub_32, restrict_open=False),
        f"/ip firewall filter remove [find comment={tag}]",
        # Each rule goes on top, so they are added in reverse: accept, then drop input, then drop forward.
        _top_rule(drop_forward),
        _top_rule(drop_input),
        _top_rule(accept),
    ]

