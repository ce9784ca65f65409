"""The hub's WireGuard interface: read its state, make it match a desired configuration.

`sync` brings an interface to a `HubConfig` by difference, never by restarting it: it creates
the interface only when it is missing, sets the private key and listen port only when they
differ, and changes peers one by one with `wg set` (add, change allowed-ips, remove), so peers
that did not change keep their session and counters. Commands, formats and their meaning:
wg(8) https://www.man7.org/linux/man-pages/man8/wg.8.html (`show … dump`, `set`),
ip-link(8) and ip-address(8) from iproute2.

Peers reach only the hub, on two levels:
- each router's peer has exactly its own tunnel address as allowed-ips (a /32): WireGuard
  drops anything a router sends from another source address, and routes to that router only
  traffic for that address;
- the hub does not forward between peers: `sync` sets `net.ipv4.conf.<interface>.forwarding`
  to 0, which stops the kernel from forwarding packets received on that interface even when the
  host forwards elsewhere (ip-sysctl: https://docs.kernel.org/networking/ip-sysctl.html,
  "conf/interface/forwarding"). Setting `net.ipv4.ip_forward` later resets every interface's
  flag, so each sync (and each watch round) checks it again; a firewall rule dropping FORWARD
  from the interface makes it permanent (docs/deployment.md).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Interface, IPv4Network, IPv6Network, ip_network
from pathlib import Path

from portal.wireguard.addresses import peer_allowed_ips
from portal.wireguard.command import Runner
from portal.wireguard.errors import (
    CommandFailed,
    InvalidInterfaceName,
    InvalidKey,
    UnexpectedOutput,
    WireGuardError,
)
from portal.wireguard.keys import KeyPair, read_private_key_file, validate_public_key

log = logging.getLogger(__name__)

# Reject-After-Time in the WireGuard paper (§6.1, https://www.wireguard.com/papers/wireguard.pdf):
# 180 s after a handshake no data key is valid any more. A router sending keepalives every 25 s
# renews its handshake about every 2 minutes, so a handshake older than this means the tunnel
# is down (or was never up).
STALE_AFTER = 180.0
# A keepalive every 25 s keeps NAT mappings open on nearly all equipment (the value wg(8) suggests).
KEEPALIVE_SECONDS = 25
PEERS_PER_COMMAND = 200  # peers per `wg set` call: 200 × ~80 characters stays far below ARG_MAX
_INTERFACE_NAME = re.compile(r"[A-Za-z0-9_-]{1,15}")  # IFNAMSIZ - 1; no "." (sysctl paths), no "/"
_UNSUPPORTED = ("Unknown device type", "Not supported", "not supported", "Operation not supported")
AllowedNet = IPv4Network | IPv6Network


def interface_name(value: str) -> str:
    """`value` if the kernel, `wg` and `sysctl` take it as an interface name, else InvalidInterfaceName."""
    if not isinstance(value, str) or not _INTERFACE_NAME.fullmatch(value):
        raise InvalidInterfaceName(
            f"{value!r} is not a usable interface name (1 to 15 letters, digits, '-' or '_')")
    return value


# -- state ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerState:
    """One peer as `wg show <interface> dump` reports it."""

    public_key: str
    endpoint: str | None
    allowed_ips: tuple[AllowedNet, ...]
    latest_handshake: datetime | None  # UTC; None when there was none
    rx_bytes: int
    tx_bytes: int
    persistent_keepalive: int | None

    def handshake_age(self, now: datetime | None = None) -> float | None:
        """Seconds since the latest handshake, or None when there was none."""
        if self.latest_handshake is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.latest_handshake).total_seconds())

    def is_stale(self, now: datetime | None = None, stale_after: float = STALE_AFTER) -> bool:
        """True when the tunnel to this peer is down: no handshake, or none for `stale_after` seconds."""
        age = self.handshake_age(now)
        return age is None or age > stale_after


@dataclass(frozen=True)
class InterfaceState:
    """An interface's WireGuard state. Its private key is read and dropped, never kept."""

    name: str
    public_key: str | None
    listen_port: int
    fwmark: int | None
    peers: Mapping[str, PeerState]


def _field(value: str) -> str | None:
    return None if value in ("(none)", "off", "") else value


def _int(value: str, what: str, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise UnexpectedOutput(f"wg dump line {line}: {what} is not a number") from None


def parse_dump(text: str, interface: str) -> InterfaceState:
    """Read the output of `wg show <interface> dump` (tab-separated; the first line is the interface).

    The interface line starts with the private key: it is discarded at once and never appears
    in an error. Peer lines: public-key, preshared-key, endpoint, allowed-ips, latest-handshake
    (seconds since the epoch, 0 for none), transfer-rx, transfer-tx, persistent-keepalive.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise UnexpectedOutput(f"wg dump of {interface} is empty")
    head = lines[0].split("\t")
    if len(head) != 4:
        raise UnexpectedOutput(f"wg dump of {interface}: interface line has {len(head)} fields, expected 4")
    _private, public, port, fwmark = head
    del _private, head
    peers: dict[str, PeerState] = {}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 8:
            raise UnexpectedOutput(f"wg dump of {interface}: line {number} has {len(fields)} fields, expected 8")
        key, _psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
        del _psk
        try:
            nets = tuple(ip_network(item, strict=False) for item in allowed.split(",") if _field(item))
        except ValueError:
            raise UnexpectedOutput(f"wg dump of {interface}: line {number} has unreadable allowed-ips") from None
        stamp = _int(handshake, "latest-handshake", number)
        peers[key] = PeerState(
            public_key=key,
            endpoint=_field(endpoint),
            allowed_ips=nets,
            latest_handshake=datetime.fromtimestamp(stamp, UTC) if stamp else None,
            rx_bytes=_int(rx, "transfer-rx", number),
            tx_bytes=_int(tx, "transfer-tx", number),
            persistent_keepalive=None if _field(keepalive) is None else _int(keepalive, "keepalive", number),
        )
    return InterfaceState(
        name=interface,
        public_key=_field(public),
        listen_port=_int(port, "listen-port", 1),
        fwmark=None if _field(fwmark) is None else int(fwmark, 0),
        peers=peers,
    )


def read_state(runner: Runner, interface: str) -> InterfaceState | None:
    """The interface's WireGuard state, or None when no such interface exists."""
    interface_name(interface)
    done = runner.run(["wg", "show", interface, "dump"], interface=interface, check=False)
    if done.returncode != 0:
        if "No such device" in done.stderr:
            return None
        runner.run(["wg", "show", interface, "dump"], interface=interface)  # raises the typed error
    return parse_dump(done.stdout, interface)


@dataclass(frozen=True)
class LinkInfo:
    """What iproute2 says about the interface: index (changes when recreated), kind, state, addresses."""

    ifindex: int
    kind: str  # "wireguard" (kernel module) or "tun" (wireguard-go)
    up: bool
    addresses: tuple[IPv4Interface, ...]


def link_info(runner: Runner, interface: str) -> LinkInfo | None:
    """The interface's link and IPv4 addresses, or None when it does not exist."""
    interface_name(interface)
    done = runner.run(["ip", "-j", "-d", "addr", "show", "dev", interface], interface=interface, check=False)
    if done.returncode != 0:
        if "does not exist" in done.stderr:
            return None
        runner.run(["ip", "-j", "-d", "addr", "show", "dev", interface], interface=interface)
    try:
        rows = json.loads(done.stdout)
        row = rows[0]
        addresses = tuple(IPv4Interface(f"{a['local']}/{a['prefixlen']}")
                          for a in row.get("addr_info", []) if a.get("family") == "inet")
        return LinkInfo(
            ifindex=int(row["ifindex"]),
            kind=str(row.get("linkinfo", {}).get("info_kind", "")),
            up="UP" in row.get("flags", []),
            addresses=addresses,
        )
    except (ValueError, LookupError, TypeError):
        raise UnexpectedOutput(f"ip addr show {interface}: unreadable JSON") from None


def forwarding(runner: Runner, interface: str) -> bool:
    """Whether the kernel forwards IPv4 packets received on `interface`."""
    done = runner.run(["sysctl", "-n", f"net.ipv4.conf.{interface_name(interface)}.forwarding"], interface=interface)
    return done.stdout.strip() not in ("", "0")


def ip_forward(runner: Runner) -> bool:
    """Whether the host forwards IPv4 at all (net.ipv4.ip_forward)."""
    return runner.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() not in ("", "0")


# -- desired configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A router as the hub sees it: its public key and the addresses it may use (its /32)."""

    public_key: str
    allowed_ips: tuple[AllowedNet, ...]
    label: str = ""  # for logs and status only (e.g. the router's id); never sent to wg

    def __post_init__(self) -> None:
        validate_public_key(self.public_key)
        if not self.allowed_ips:
            raise InvalidKey(f"peer {self.public_key} has no allowed address")

    @classmethod
    def router(cls, public_key: str, address: str, label: str = "") -> Peer:
        """A router peer allowed only its own tunnel address."""
        return cls(public_key=public_key.strip(), allowed_ips=peer_allowed_ips(address), label=label)


@dataclass(frozen=True)
class HubConfig:
    """What the hub's interface must look like. Hashable: `watch` compares successive ones.

    The private key comes either as text (e.g. decrypted from the database), handed to `wg`
    through a temporary 0600 file, or as the path of a 0600 key file.
    """

    interface: str
    address: IPv4Interface
    listen_port: int
    peers: tuple[Peer, ...] = ()
    private_key: str | None = field(default=None, repr=False)
    private_key_file: str | None = None

    def __post_init__(self) -> None:
        interface_name(self.interface)
        if not 1 <= int(self.listen_port) <= 65535:
            raise ValueError(f"listen port {self.listen_port} is not between 1 and 65535")
        if (self.private_key is None) == (self.private_key_file is None):
            raise ValueError("give the hub's private key or its key file, not both or neither")
        seen: set[str] = set()
        for peer in self.peers:
            if peer.public_key in seen:
                raise InvalidKey(f"public key {peer.public_key} is given to two routers")
            seen.add(peer.public_key)
        _refuse_overlaps(self.peers)

    def key_pair(self) -> KeyPair:
        if self.private_key is not None:
            return KeyPair.from_private(self.private_key)
        return read_private_key_file(self.private_key_file)  # type: ignore[arg-type]


def _refuse_overlaps(peers: Sequence[Peer]) -> None:
    """ValueError when two peers' allowed addresses overlap (WireGuard would route them to one).

    Sorted by first address, a network overlaps an earlier one exactly when it starts before the
    furthest end seen so far: n log n, for the thousand /32s a hub holds every half second.
    """
    spans = sorted((net.version, int(net.network_address), int(net.broadcast_address), net, peer.public_key)
                   for peer in peers for net in peer.allowed_ips)
    furthest: dict[int, tuple[int, AllowedNet, str]] = {}
    for version, first, last, net, key in spans:
        if version in furthest and first <= furthest[version][0]:
            _, other, other_key = furthest[version]
            raise ValueError(f"allowed address {net} of {key} overlaps {other} of {other_key}")
        if version not in furthest or last > furthest[version][0]:
            furthest[version] = (last, net, key)


# -- the difference between what is and what should be ---------------------------------------------


@dataclass(frozen=True)
class PeerPlan:
    add: tuple[Peer, ...] = ()
    change: tuple[Peer, ...] = ()  # present with other allowed-ips
    remove: tuple[str, ...] = ()  # public keys

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.remove)


def _same_nets(a: Iterable[AllowedNet], b: Iterable[AllowedNet]) -> bool:
    return {str(n) for n in a} == {str(n) for n in b}


def plan_peers(current: Mapping[str, PeerState], desired: Sequence[Peer]) -> PeerPlan:
    """What to add, change and remove so that the interface's peers are exactly `desired`."""
    wanted = {peer.public_key: peer for peer in desired}
    add = tuple(p for k, p in wanted.items() if k not in current)
    change = tuple(p for k, p in wanted.items() if k in current and not _same_nets(current[k].allowed_ips, p.allowed_ips))
    remove = tuple(sorted(k for k in current if k not in wanted))
    return PeerPlan(add=add, change=change, remove=remove)


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def apply_peer_plan(runner: Runner, interface: str, plan: PeerPlan, *, per_command: int = PEERS_PER_COMMAND) -> None:
    """Carry out `plan` with `wg set`: removals first (an address may pass to a new peer), then the rest."""
    for keys in _chunks(plan.remove, per_command):
        argv = ["wg", "set", interface]
        for key in keys:
            argv += ["peer", key, "remove"]
        runner.run(argv, interface=interface)
    for peers in _chunks((*plan.change, *plan.add), per_command):
        argv = ["wg", "set", interface]
        for peer in peers:
            argv += ["peer", peer.public_key, "allowed-ips", ",".join(str(n) for n in peer.allowed_ips)]
        runner.run(argv, interface=interface)


# -- creating and configuring the interface -------------------------------------------------------


def create_interface(runner: Runner, interface: str, implementation: str = "auto", *, ready_within: float = 5.0) -> str:
    """Create a WireGuard interface; return "kernel" or "wireguard-go".

    "auto" tries the kernel module (`ip link add … type wireguard`) and falls back to
    wireguard-go when the kernel has none. wireguard-go detaches and serves the interface
    until it is deleted (`ip link del`).
    """
    interface_name(interface)
    if implementation not in ("auto", "kernel", "wireguard-go"):
        raise ValueError(f"unknown WireGuard implementation {implementation!r}")
    if implementation in ("auto", "kernel"):
        done = runner.run(["ip", "link", "add", "dev", interface, "type", "wireguard"], interface=interface,
                          check=implementation == "kernel")
        if done.returncode == 0:
            return "kernel"
        if not any(word in done.stderr for word in _UNSUPPORTED):
            runner.run(["ip", "link", "add", "dev", interface, "type", "wireguard"], interface=interface)
        log.info("%s: no WireGuard in this kernel, starting wireguard-go", interface)
    runner.run(["wireguard-go", interface], interface=interface)
    deadline = time.monotonic() + ready_within
    while read_state(runner, interface) is None:  # bounded: the userspace socket appears at once
        if time.monotonic() > deadline:
            raise CommandFailed(command="wireguard-go", returncode=0, interface=interface,
                                detail=f"no WireGuard interface after {ready_within:g} s")
        time.sleep(0.05)
    return "wireguard-go"


def set_device(runner: Runner, interface: str, *, private_key: str | None = None,
               private_key_file: str | None = None, listen_port: int | None = None) -> None:
    """`wg set <interface> [private-key FILE] [listen-port N]`.

    A key given as text goes through a file created with mode 0600 in a private (0700)
    directory and removed at once; it is never a command-line argument.
    """
    argv = ["wg", "set", interface]
    if listen_port is not None:
        argv += ["listen-port", str(int(listen_port))]
    workdir = None
    try:
        if private_key is not None:
            KeyPair.from_private(private_key)  # validates; InvalidKey says nothing of the value
            workdir = tempfile.mkdtemp(prefix="kiosque-wg-")  # mode 0700
            path = Path(workdir) / "private.key"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, (private_key.strip() + "\n").encode("ascii"))
            finally:
                os.close(fd)
            argv += ["private-key", str(path)]
        elif private_key_file is not None:
            argv += ["private-key", str(private_key_file)]
        if len(argv) > 3:
            runner.run(argv, interface=interface)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class SyncReport:
    """What one `sync` changed, and how long it took."""

    interface: str
    implementation: str | None  # "kernel"/"wireguard-go" when this sync created the interface
    key_set: bool
    listen_port_set: bool
    addresses_added: tuple[str, ...]
    addresses_removed: tuple[str, ...]
    brought_up: bool
    forwarding_turned_off: bool
    plan: PeerPlan
    peers: int
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.implementation or self.key_set or self.listen_port_set or self.addresses_added
                    or self.addresses_removed or self.brought_up or self.forwarding_turned_off
                    or not self.plan.empty)

    def summary(self) -> str:
        parts = []
        if self.implementation:
            parts.append(f"created ({self.implementation})")
        if self.key_set:
            parts.append("private key set")
        if self.listen_port_set:
            parts.append("listen port set")
        if self.addresses_added or self.addresses_removed:
            parts.append("address set")
        if self.brought_up:
            parts.append("brought up")
        if self.forwarding_turned_off:
            parts.append("forwarding turned off")
        plan = self.plan
        parts.append(f"peers: {len(plan.add)} added, {len(plan.change)} changed, {len(plan.remove)} removed, "
                     f"{self.peers} in all")
        return f"{self.interface}: " + "; ".join(parts) + f" ({self.seconds * 1000:.0f} ms)"


def sync(runner: Runner, config: HubConfig, *, create: bool = True, implementation: str = "auto") -> SyncReport:
    """Make the interface match `config` without restarting it; return what changed."""
    started = time.perf_counter()
    name = config.interface
    pair = config.key_pair()
    if any(peer.public_key == pair.public for peer in config.peers):
        raise InvalidKey("a router peer has the hub's own public key")
    created = None
    link = link_info(runner, name)
    if link is None:
        if not create:
            raise CommandFailed(command="sync", returncode=0, interface=name, detail="interface does not exist")
        created = create_interface(runner, name, implementation)
        link = link_info(runner, name)
        if link is None:
            raise CommandFailed(command="sync", returncode=0, interface=name, detail="interface vanished after creation")
    state = read_state(runner, name)
    if state is None:
        raise CommandFailed(command="wg show", returncode=0, interface=name, detail="not a WireGuard interface")

    key_set = state.public_key != pair.public
    port_set = state.listen_port != config.listen_port
    if key_set or port_set:
        set_device(runner, name,
                   private_key=config.private_key if key_set and config.private_key is not None else None,
                   private_key_file=config.private_key_file if key_set and config.private_key is None else None,
                   listen_port=config.listen_port if port_set else None)

    added, removed = [], []
    for address in link.addresses:
        if address != config.address:
            runner.run(["ip", "addr", "del", str(address), "dev", name], interface=name)
            removed.append(str(address))
    if config.address not in link.addresses:
        runner.run(["ip", "addr", "add", str(config.address), "dev", name], interface=name)
        added.append(str(config.address))
    if not link.up:
        runner.run(["ip", "link", "set", "dev", name, "up"], interface=name)

    forwarding_was_on = forwarding(runner, name)
    if forwarding_was_on:
        runner.run(["sysctl", "-q", "-w", f"net.ipv4.conf.{name}.forwarding=0"], interface=name)
        log.warning("%s: forwarding was on for the tunnel interface; turned off (routers must not reach "
                    "each other)", name)

    plan = plan_peers(state.peers, config.peers)
    apply_peer_plan(runner, name, plan)
    report = SyncReport(
        interface=name, implementation=created, key_set=key_set, listen_port_set=port_set,
        addresses_added=tuple(added), addresses_removed=tuple(removed), brought_up=not link.up,
        forwarding_turned_off=forwarding_was_on, plan=plan, peers=len(config.peers),
        seconds=time.perf_counter() - started,
    )
    if report.changed:
        log.info("%s", report.summary())
    return report


# -- status and watch -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HubStatus:
    """The interface as it is, for `vpn status` and the health view."""

    interface: str
    exists: bool
    kind: str = ""
    up: bool = False
    addresses: tuple[str, ...] = ()
    public_key: str | None = None
    listen_port: int | None = None
    forwarding: bool = False  # forwarding on the tunnel interface: must be False
    host_forwarding: bool = False  # net.ipv4.ip_forward: allowed, as long as the interface's own flag is off
    peers: Mapping[str, PeerState] = field(default_factory=dict)


def status(runner: Runner, interface: str) -> HubStatus:
    link = link_info(runner, interface)
    if link is None:
        return HubStatus(interface=interface, exists=False)
    state = read_state(runner, interface)
    return HubStatus(
        interface=interface, exists=True, kind=link.kind, up=link.up,
        addresses=tuple(str(a) for a in link.addresses),
        public_key=state.public_key if state else None,
        listen_port=state.listen_port if state else None,
        forwarding=forwarding(runner, interface), host_forwarding=ip_forward(runner),
        peers=dict(state.peers) if state else {},
    )


def watch(
    runner: Runner,
    load: Callable[[], HubConfig],
    *,
    stop: threading.Event,
    interval: float = 0.5,
    resync_every: float = 30.0,
    max_rounds: int | None = None,
    on_report: Callable[[SyncReport], None] | None = None,
    on_error: Callable[[WireGuardError], None] | None = None,
    on_round: Callable[[], None] | None = None,
    implementation: str = "auto",
) -> int:
    """Apply `load()` whenever it changes (checked every `interval` s) and every `resync_every` s.

    Runs until `stop` is set or after `max_rounds` rounds; returns the number of syncs.
    `on_round` runs after each round's sync (the caller reads the peers' state there, at its
    own pace). A WireGuardError is reported to `on_error` (or logged) and the loop goes on;
    anything else (a database error in `load`) ends it.
    """
    applied: HubConfig | None = None
    last_sync = float("-inf")
    syncs = rounds = 0
    while not stop.is_set() and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        config = load()
        if config != applied or time.monotonic() - last_sync >= resync_every:
            try:
                report = sync(runner, config, implementation=implementation)
            except WireGuardError as exc:
                (on_error or (lambda e: log.error("sync failed: %s", e)))(exc)
                applied = None
            else:
                applied, last_sync, syncs = config, time.monotonic(), syncs + 1
                if on_report:
                    on_report(report)
        if on_round:
            try:
                on_round()
            except WireGuardError as exc:
                (on_error or (lambda e: log.error("reading the peers failed: %s", e)))(exc)
        stop.wait(interval)
    return syncs
