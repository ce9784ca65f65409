"""Kiosque's WireGuard hub: routers behind carrier NAT dial out to Kiosque, which reaches their API
through the tunnel.

This package knows nothing of Flask or the database. It provides key pairs (`keys`), the
tunnel network and addresses (`addresses`), and the hub interface: reading its state and
making it match the routers Kiosque knows, by difference, without restarting it (`interface`),
and the operator's settings (`settings`).
Commands run through a `Runner` (`command`) with a timeout and typed errors.
"""

from portal.wireguard.addresses import (
    allocate,
    hub_address,
    peer_allowed_ips,
    router_address,
    router_capacity,
    router_interface,
    tunnel_network,
)
from portal.wireguard.command import Runner
from portal.wireguard.errors import (
    AddressPoolExhausted,
    CommandError,
    CommandFailed,
    CommandTimeout,
    InsecureKeyFile,
    InvalidEndpoint,
    InvalidInterfaceName,
    InvalidKey,
    InvalidNetwork,
    PermissionDenied,
    ToolMissing,
    UnexpectedOutput,
    WireGuardError,
)
from portal.wireguard.interface import (
    KEEPALIVE_SECONDS,
    STALE_AFTER,
    HubConfig,
    HubStatus,
    InterfaceState,
    Peer,
    PeerPlan,
    PeerState,
    SyncReport,
    interface_name,
    parse_dump,
    plan_peers,
    read_state,
    status,
    sync,
    watch,
)
from portal.wireguard.keys import KeyPair, public_key, read_private_key_file, validate_public_key, write_private_key_file
from portal.wireguard.settings import DEFAULT_INTERFACE, Endpoint, HubSettings

__all__ = [
    "DEFAULT_INTERFACE", "KEEPALIVE_SECONDS", "STALE_AFTER", "AddressPoolExhausted", "CommandError",
    "CommandFailed", "CommandTimeout", "Endpoint", "HubConfig", "HubSettings", "HubStatus", "InsecureKeyFile",
    "InterfaceState", "InvalidEndpoint", "InvalidInterfaceName",
    "InvalidKey", "InvalidNetwork", "KeyPair", "Peer", "PeerPlan", "PeerState", "PermissionDenied", "Runner",
    "SyncReport", "ToolMissing", "UnexpectedOutput", "WireGuardError", "allocate", "hub_address",
    "interface_name", "parse_dump", "peer_allowed_ips", "plan_peers", "public_key", "read_private_key_file",
    "read_state", "router_address", "router_capacity", "router_interface", "status", "sync",
    "tunnel_network", "validate_public_key", "watch", "write_private_key_file",
]
