"""Routers reached through Kiosque's WireGuard hub: their addresses and keys, the hub's wanted state,
and what the hub reports of them.

The web app and the worker never touch the hub's interface (that needs root). They give a
tunnelled router its address and key pair here, write its part of the router script, and read
the hub's reports from the router's row. The operator's privileged service runs `flask vpn
watch` (portal/cli.py): it builds the interface's configuration from the database with
`hub_config`, applies it with the adapter (portal/wireguard), and writes each peer's handshake,
endpoint and counters back with `record`.
"""

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from ipaddress import IPv4Address

from flask import current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from portal import wireguard
from portal.extensions import db
from portal.models import Owner, Router, RouterConnection, TunnelHub, utcnow
from portal.routeros import mikhmon
from portal.services.rows import commit_retrying
from portal.wireguard import (
    STALE_AFTER,
    HubConfig,
    HubSettings,
    HubStatus,
    KeyPair,
    Peer,
    PeerState,
    Runner,
    SyncReport,
    allocate,
)

# `vpn watch` reports every few seconds; a minute without a report means its service stopped,
# and then the hub knows nothing of the routers: a stale handshake says nothing about them.
REPORT_EVERY = 5.0
HUB_SILENT_AFTER = 60.0
HUB_ROW = 1


class TunnelHealth(StrEnum):
    """A tunnelled router's tunnel, as the hub last reported it."""

    OFF = "off"  # the router is on the tunnel, but this server's hub is not set up
    HUB_SILENT = "hub silent"  # the hub's service has not reported lately: nothing is known of the router
    WAITING = "waiting"  # the hub never had a handshake from it: the script has not run, or cannot reach the hub
    DOWN = "down"  # its last handshake is older than WireGuard's Reject-After-Time
    UP = "up"


def hub() -> HubSettings | None:
    """The operator's hub settings (PORTAL_VPN_*), None when the tunnel is off on this server."""
    return current_app.extensions["kiosque.tunnel_hub"]


def supports_tunnel(version: str) -> bool:
    """Whether a router with this RouterOS version can have WireGuard (7.1 or later); unknown counts as yes."""
    try:
        return not version or mikhmon.version_at_least(version, 7, 1)
    except ValueError:
        return True


def hub_keys() -> KeyPair:
    """The hub's key pair, made the first time it is asked for and kept (encrypted) ever after."""
    row = db.session.get(TunnelHub, HUB_ROW)
    if row is None:
        pair = KeyPair.generate()
        db.session.add(TunnelHub(id=HUB_ROW, private_key=pair.private, public_key=pair.public))
        try:
            db.session.commit()
            return pair
        except IntegrityError:  # another process made it at the same moment: theirs it is
            db.session.rollback()
            row = db.session.get(TunnelHub, HUB_ROW)
    return KeyPair.from_private(row.private_key)


def taken_addresses() -> list[str]:
    """Every tunnel address a router holds, tunnelled or not: none is given twice while its router exists."""
    return list(db.session.scalars(select(Router.tunnel_address).where(Router.tunnel_address.is_not(None))))


def needs_identity(router: Router, settings: HubSettings) -> bool:
    """Whether a tunnelled router lacks a key pair, or an address in the current tunnel network."""
    return router.tunnel_private_key is None or router.tunnel_address is None \
        or IPv4Address(router.tunnel_address) not in settings.network


def stage_identity(router: Router, settings: HubSettings) -> None:
    """Give the router a key pair and the lowest free address, when it lacks them; staged, not committed.

    An address outside the network (the operator moved the tunnel) is replaced: the router must
    run its script again anyway. Raises AddressPoolExhausted when the network is full.
    """
    if router.tunnel_private_key is None:
        pair = KeyPair.generate()
        router.tunnel_private_key, router.tunnel_public_key = pair.private, pair.public
    if router.tunnel_address is None or IPv4Address(router.tunnel_address) not in settings.network:
        router.tunnel_address = str(allocate(settings.network, taken_addresses()))


def assign(router: Router) -> None:
    """Make sure a tunnelled router has its key pair and address (committed, retried if another router
    took the same address meanwhile)."""
    settings = hub()
    if settings is not None and router.tunnelled and needs_identity(router, settings):
        commit_retrying(lambda: stage_identity(router, settings))


def source_address() -> str:
    """The address a tunnelled router sees Kiosque's connections come from: the hub's, as a /32."""
    return f"{hub().address.ip}/32"


# -- the hub's side (the privileged service) -------------------------------------------------------


def hub_config(settings: HubSettings) -> tuple[HubConfig, list[int]]:
    """What the hub's interface must be: one peer per tunnelled router; and the routers left out.

    A router whose address is outside the network (the operator moved it) is left out until its
    owner generates and runs its script again.
    """
    rows = db.session.execute(
        select(Router.id, Router.tunnel_public_key, Router.tunnel_address).where(
            Router.connection == RouterConnection.TUNNEL, Router.tunnel_public_key.is_not(None),
            Router.tunnel_address.is_not(None)).order_by(Router.id)
    ).all()
    peers, outside = [], []
    for router_id, key, address in rows:
        if IPv4Address(address) in settings.network:
            peers.append(Peer.router(key, address, label=str(router_id)))
        else:
            outside.append(router_id)
    config = HubConfig(interface=settings.interface, address=settings.address, listen_port=settings.listen_port,
                       peers=tuple(peers), private_key=hub_keys().private)
    return config, outside


def record(peers: Mapping[str, PeerState], now: datetime | None = None) -> int:
    """Write each peer's handshake, endpoint and counters on its router; returns how many it matched."""
    rows = [{"key": key, "handshake": peer.latest_handshake, "endpoint": peer.endpoint, "rx": peer.rx_bytes,
             "tx": peer.tx_bytes} for key, peer in peers.items()]
    if not rows:
        return 0
    table = Router.__table__
    result = db.session.execute(
        update(table).where(table.c.tunnel_public_key == bindparam("key")).values(
            tunnel_handshake_at=bindparam("handshake"), tunnel_endpoint=bindparam("endpoint"),
            tunnel_rx_bytes=bindparam("rx"), tunnel_tx_bytes=bindparam("tx"), tunnel_seen_at=now or utcnow()),
        rows)
    db.session.commit()
    return result.rowcount


def sync_hub(settings: HubSettings, runner: Runner) -> tuple[SyncReport, list[int]]:
    """One pass: the interface made to match the database; the routers left out (outside the network)."""
    config, outside = hub_config(settings)
    db.session.remove()  # nothing held open while the tools run
    return wireguard.sync(runner, config), outside


def observe(settings: HubSettings, runner: Runner) -> int:
    """Read the peers' state from the interface and record it on the routers; how many were matched."""
    state = wireguard.read_state(runner, settings.interface)
    try:
        return record(state.peers) if state else 0
    finally:
        db.session.remove()


def watch_hub(settings: HubSettings, runner: Runner, stop: threading.Event, *, interval: float = 0.5,
              report_every: float = REPORT_EVERY, max_rounds: int | None = None) -> int:
    """Keep the interface in step with the database (a new router within `interval`) and record the
    peers' state every `report_every` seconds, until `stop` is set; returns the number of syncs."""
    last_report = float("-inf")

    def load() -> HubConfig:
        try:
            return hub_config(settings)[0]
        finally:
            db.session.remove()

    def report_peers() -> None:
        nonlocal last_report
        if time.monotonic() - last_report >= report_every:
            last_report = time.monotonic()
            observe(settings, runner)

    return wireguard.watch(runner, load, stop=stop, interval=interval, on_round=report_peers, max_rounds=max_rounds)


@dataclass(frozen=True)
class PeerLine:
    """A tunnelled router and its peer on the interface (None when it is not there)."""

    router_id: int
    name: str
    owner_email: str
    address: str | None
    peer: PeerState | None


def match_peers(status: HubStatus) -> tuple[list[PeerLine], list[str]]:
    """The tunnelled routers with their peers, and the interface's peers that belong to no router."""
    rows = db.session.execute(
        select(Router.id, Router.name, Owner.email, Router.tunnel_address, Router.tunnel_public_key)
        .join(Owner).where(Router.connection == RouterConnection.TUNNEL).order_by(Router.id)
    ).all()
    lines = [PeerLine(router_id, name, email, address, status.peers.get(key))
             for router_id, name, email, address, key in rows]
    known = {key for *_, key in rows}
    return lines, sorted(key for key in status.peers if key not in known)


# -- health ---------------------------------------------------------------------------------------


def health(router: Router, now: datetime | None = None) -> TunnelHealth | None:
    """The router's tunnel as the hub last reported it; None for a direct router.

    Staleness is judged at the moment of the report, so a hub that stopped reporting never
    makes a router look down: it is "hub silent" instead.
    """
    if not router.tunnelled:
        return None
    if hub() is None:
        return TunnelHealth.OFF
    seen = router.tunnel_seen_at
    if seen is None or (now or utcnow()) - seen > timedelta(seconds=HUB_SILENT_AFTER):
        return TunnelHealth.HUB_SILENT
    if router.tunnel_handshake_at is None:
        return TunnelHealth.WAITING
    if seen - router.tunnel_handshake_at > timedelta(seconds=STALE_AFTER):
        return TunnelHealth.DOWN
    return TunnelHealth.UP

