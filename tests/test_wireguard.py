"""The WireGuard adapter without a tunnel: keys, addresses, `wg show dump`, peer plans, errors, script lines.

Keys are checked against wireguard-tools itself (`wg genkey`, `wg pubkey`); the tunnel itself
is in test_wireguard_tunnel.py.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Interface, IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.services.setup_kit import ScriptValueError
from portal.services.tunnel_script import tunnel_lines
from portal.wireguard import (
    AddressPoolExhausted,
    CommandFailed,
    CommandTimeout,
    HubConfig,
    InsecureKeyFile,
    InvalidInterfaceName,
    InvalidKey,
    InvalidNetwork,
    KeyPair,
    Peer,
    Runner,
    ToolMissing,
    UnexpectedOutput,
    allocate,
    hub_address,
    parse_dump,
    plan_peers,
    public_key,
    read_private_key_file,
    router_capacity,
    router_interface,
    tunnel_network,
    write_private_key_file,
)
from portal.wireguard.interface import PeerState
from portal.wireguard.keys import redact_keys
from tests import routeros_wg
from tests.conftest import SECRETS

PURE = settings(deadline=None, max_examples=50)
WG = shutil.which("wg")


def needs_wg():
    if WG is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wireguard-tools (wg) is not installed: .ci/run installs it")
        pytest.skip("wireguard-tools (wg) is not installed")


def wg(*args: str, stdin: str = "") -> str:
    return subprocess.run([WG, *args], input=stdin, capture_output=True, text=True, timeout=10, check=True).stdout.strip()


def new_pair() -> KeyPair:
    pair = KeyPair.generate()
    SECRETS.add(pair.private)  # the run's log check makes sure no private key was ever logged
    return pair


# -- keys --------------------------------------------------------------------------------------------


def test_generated_keys_are_what_wg_genkey_and_wg_pubkey_make():
    needs_wg()
    for _ in range(20):
        pair = new_pair()
        assert len(pair.private) == 44 and pair.private.endswith("=")
        raw = base64.b64decode(pair.private)
        assert raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40  # clamped like wg genkey
        assert wg("pubkey", stdin=pair.private + "\n") == pair.public


def test_public_key_of_wg_genkey_output_matches_wg_pubkey():
    needs_wg()
    for _ in range(20):
        private = wg("genkey")
        SECRETS.add(private)
        assert public_key(private) == wg("pubkey", stdin=private + "\n")
        assert KeyPair.from_private(private).private == private


def test_key_pair_never_shows_its_private_key():
    pair = new_pair()
    assert pair.private not in repr(pair) and pair.public in repr(pair)


@pytest.mark.parametrize("value", ["", "abc", "A" * 44, "A" * 43 + "=" + "x", "!" * 43 + "=", None, "A" * 42 + "B="])
def test_invalid_keys_are_refused_without_repeating_them(value):
    with pytest.raises(InvalidKey) as caught:
        public_key(value)
    if value:
        assert value not in str(caught.value)


def test_key_file_written_0600_and_read_back(tmp_path):
    pair = new_pair()
    path = write_private_key_file(tmp_path / "hub.key", pair.private)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_private_key_file(path) == pair
    with pytest.raises(FileExistsError):
        write_private_key_file(path, pair.private)


def test_key_file_readable_by_others_is_refused(tmp_path):
    pair = new_pair()
    path = write_private_key_file(tmp_path / "hub.key", pair.private)
    path.chmod(0o644)
    with pytest.raises(InsecureKeyFile, match="0644") as caught:
        read_private_key_file(path)
    assert pair.private not in str(caught.value)
    with pytest.raises(InsecureKeyFile, match="no such file"):
        read_private_key_file(tmp_path / "missing.key")
    (tmp_path / "junk.key").write_text("not a key\n")
    (tmp_path / "junk.key").chmod(0o600)
    with pytest.raises(InsecureKeyFile, match="does not hold"):
        read_private_key_file(tmp_path / "junk.key")


def test_redaction_replaces_every_key_shaped_word():
    pair = new_pair()
    text = f"Key {pair.private} is invalid; peer {pair.public}."
    assert redact_keys(text) == "Key <key> is invalid; peer <key>."


# -- addresses ----------------------------------------------------------------------------------------


def test_hub_takes_the_first_host_and_routers_the_next_free_ones():
    network = tunnel_network("10.77.0.0/24")
    assert hub_address(network) == IPv4Interface("10.77.0.1/24")
    taken: list[str] = []
    for expected in ("10.77.0.2", "10.77.0.3", "10.77.0.4"):
        address = allocate(network, taken)
        assert str(address) == expected
        taken.append(str(address))
    taken.remove("10.77.0.3")  # that router was deleted: its address may serve again
    assert str(allocate(network, taken)) == "10.77.0.3"
    assert router_interface(network, "10.77.0.9") == IPv4Interface("10.77.0.9/24")


def test_a_full_network_says_so():
    network = tunnel_network("10.77.0.0/29")
    assert router_capacity(network) == 5
    taken = [allocate(network, [])]
    while len(taken) < 5:
        taken.append(allocate(network, taken))
    assert [str(a) for a in taken] == [f"10.77.0.{i}" for i in range(2, 7)]
    with pytest.raises(AddressPoolExhausted):
        allocate(network, taken)


@given(st.sets(st.integers(min_value=2, max_value=254), max_size=60))
@PURE
def test_allocation_never_returns_a_taken_address(held):
    network = IPv4Network("192.168.200.0/24")
    taken = [f"192.168.200.{i}" for i in held]
    address = allocate(network, taken)
    assert str(address) not in taken and address in network
    assert address not in (network.network_address, network.broadcast_address, hub_address(network).ip)
    assert int(str(address).rsplit(".", 1)[1]) == min(set(range(2, 255)) - held)  # the lowest free one


@pytest.mark.parametrize(("value", "reason"), [
    ("10.77.0.1/24", "host bits"),
    ("10.77.0.0", "no prefix"),
    ("fd00::/64", "IPv6"),
    ("10.0.0.0/8", "larger than /16"),
    ("10.77.0.0/31", "smaller than /30"),
    ("127.0.0.0/24", "not private"),
    ("169.254.10.0/24", "not private"),
    ("224.0.0.0/24", "not private"),
    ("240.0.0.0/24", "not private"),
    ("0.0.0.0/24", "not private"),
    ("8.8.8.0/24", "not private"),
    ("100.64.0.0/24", "carrier-grade NAT"),
    ("192.168.88.0/24", "MikroTik"),
    ("192.168.0.0/16", "MikroTik"),
    ("hub", "not a network"),
])
def test_unusable_tunnel_networks_are_refused_with_the_reason(value, reason):
    with pytest.raises(InvalidNetwork, match=reason):
        tunnel_network(value)


def test_tunnel_network_avoids_networks_in_use():
    assert tunnel_network("10.77.0.0/24") == IPv4Network("10.77.0.0/24")
    assert tunnel_network("198.51.100.0/24")  # documentation ranges serve test beds
    with pytest.raises(InvalidNetwork, match="already in use"):
        tunnel_network("10.77.0.0/24", avoid=["10.77.0.128/25"])


# -- wg show dump -------------------------------------------------------------------------------------


def dump_text(private: str, peers: list[tuple]) -> str:
    lines = [f"{private}\t{public_key(private)}\t51820\toff"]
    for key, endpoint, allowed, handshake, rx, tx, keepalive in peers:
        lines.append(f"{key}\t(none)\t{endpoint}\t{allowed}\t{handshake}\t{rx}\t{tx}\t{keepalive}")
    return "\n".join(lines) + "\n"


def test_dump_is_read_and_the_private_key_dropped():
    hub, a, b = new_pair(), new_pair(), new_pair()
    now = int(datetime.now(UTC).timestamp())
    text = dump_text(hub.private, [
        (a.public, "198.51.100.2:40000", "10.77.0.2/32", now - 10, 1200, 3400, "25"),
        (b.public, "(none)", "(none)", 0, 0, 0, "off"),
    ])
    state = parse_dump(text, "wg-kiosque")
    assert state.public_key == hub.public and state.listen_port == 51820 and state.fwmark is None
    assert hub.private not in repr(state)
    peer_a, peer_b = state.peers[a.public], state.peers[b.public]
    assert peer_a.endpoint == "198.51.100.2:40000" and peer_a.allowed_ips == (IPv4Network("10.77.0.2/32"),)
    assert peer_a.rx_bytes == 1200 and peer_a.tx_bytes == 3400 and peer_a.persistent_keepalive == 25
    assert 9 <= peer_a.handshake_age() < 60 and not peer_a.is_stale()
    assert peer_b.latest_handshake is None and peer_b.endpoint is None and peer_b.allowed_ips == ()
    assert peer_b.is_stale() and peer_b.handshake_age() is None


def test_a_handshake_older_than_reject_after_time_is_stale():
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    peer = PeerState("k", None, (), stamp, 0, 0, None)
    assert not peer.is_stale(now=stamp + timedelta(seconds=179))
    assert peer.is_stale(now=stamp + timedelta(seconds=181))


def test_unreadable_dump_never_quotes_the_private_key():
    hub = new_pair()
    for text in (f"{hub.private}\tx\n", f"{hub.private}\t{hub.public}\tport\toff\n",
                 dump_text(hub.private, []) + f"{hub.private}\tjunk\n", ""):
        with pytest.raises(UnexpectedOutput) as caught:
            parse_dump(text, "wg0")
        assert hub.private not in str(caught.value)


# -- plans ------------------------------------------------------------------------------------------


def test_plan_adds_changes_and_removes_only_what_differs():
    a, b, c, d = (new_pair().public for _ in range(4))
    current = {
        a: PeerState(a, None, (IPv4Network("10.77.0.2/32"),), None, 0, 0, None),
        b: PeerState(b, None, (IPv4Network("10.77.0.3/32"),), None, 0, 0, None),
        c: PeerState(c, None, (IPv4Network("10.77.0.4/32"),), None, 0, 0, None),
    }
    desired = [Peer.router(a, "10.77.0.2"), Peer.router(b, "10.77.0.9"), Peer.router(d, "10.77.0.5")]
    plan = plan_peers(current, desired)
    assert [p.public_key for p in plan.add] == [d]
    assert [p.public_key for p in plan.change] == [b]
    assert plan.remove == (c,)
    assert plan_peers({a: current[a]}, [Peer.router(a, "10.77.0.2")]).empty
    assert plan_peers({}, []).empty


def test_hub_config_refuses_duplicates_overlaps_and_both_key_sources():
    hub, a, b = new_pair(), new_pair(), new_pair()
    base = {"interface": "wg-kiosque", "address": IPv4Interface("10.77.0.1/24"), "listen_port": 51820}
    HubConfig(**base, private_key=hub.private, peers=(Peer.router(a.public, "10.77.0.2"),))
    with pytest.raises(InvalidKey, match="two routers"):
        HubConfig(**base, private_key=hub.private,
                  peers=(Peer.router(a.public, "10.77.0.2"), Peer.router(a.public, "10.77.0.3")))
    with pytest.raises(ValueError, match="overlaps"):
        HubConfig(**base, private_key=hub.private,
                  peers=(Peer.router(a.public, "10.77.0.2"), Peer.router(b.public, "10.77.0.2")))
    with pytest.raises(ValueError, match="not both"):
        HubConfig(**base, private_key=hub.private, private_key_file="/etc/kiosque/hub.key")
    with pytest.raises(InvalidInterfaceName):
        HubConfig(**{**base, "interface": "wg.kiosque"}, private_key=hub.private)
    with pytest.raises(InvalidInterfaceName):
        HubConfig(**{**base, "interface": "a-very-long-interface"}, private_key=hub.private)
    assert hub.private not in repr(HubConfig(**base, private_key=hub.private))


@PURE
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(26, 32)), min_size=1, max_size=12))
def test_hub_config_finds_every_overlap_and_only_overlaps(spans):
    """The hub checks a thousand peers every half second: its sweep must agree with comparing every pair."""
    nets = [IPv4Network(f"10.77.0.{host}/{prefix}", strict=False) for host, prefix in spans]
    peers = tuple(Peer(public_key=KeyPair.generate().public, allowed_ips=(net,)) for net in nets)
    overlapping = any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    base = {"interface": "wg-kiosque", "address": IPv4Interface("10.77.1.1/24"), "listen_port": 51820}
    try:
        HubConfig(**base, private_key=KeyPair.generate().private, peers=peers)
    except ValueError as exc:
        assert overlapping and "overlaps" in str(exc)
    else:
        assert not overlapping


# -- commands -----------------------------------------------------------------------------------------


def test_runner_errors_are_typed_and_carry_no_key():
    pair = new_pair()
    runner = Runner(timeout=5)
    with pytest.raises(ToolMissing):
        runner.run(["kiosque-no-such-tool"])
    with pytest.raises(CommandTimeout, match="no result within 0.2 s"):
        runner.run(["sleep", "5"], timeout=0.2)
    with pytest.raises(CommandFailed) as caught:
        runner.run(["sh", "-c", f"echo 'bad key {pair.private}' >&2; exit 3"], interface="wg0")
    assert caught.value.returncode == 3 and "(wg0)" in str(caught.value)
    assert pair.private not in str(caught.value) and "<key>" in str(caught.value)


# -- the RouterOS script lines ----------------------------------------------------------------------


def script_values(**overrides) -> dict:
    router, hub = new_pair(), new_pair()
    values = {"private_key": router.private, "address": "10.77.0.2/24", "hub_public_key": hub.public,
              "hub_host": "hub.example.net", "hub_port": 51820, "hub_address": "10.77.0.1"}
    return values | overrides


def test_script_lines_round_trip_through_the_translator():
    values = script_values()
    lines = tunnel_lines(**values)
    tunnel, untranslated = routeros_wg.read_script("\n".join(lines))
    assert tunnel == routeros_wg.RouterTunnel(
        interface="kiosque", private_key=values["private_key"], hub_public_key=values["hub_public_key"],
        endpoint="hub.example.net:51820", allowed_address="10.77.0.1/32", keepalive_seconds=25,
        address="10.77.0.2/24")
    assert all(line.startswith(("/ip service", "/ip firewall filter", "{:local kq")) for line in untranslated)
    assert len(untranslated) == 6


def test_script_never_changes_the_api_port_and_restricts_by_address():
    lines = tunnel_lines(**script_values(api_ports=(8729,), service="api-ssl"))
    service_lines = [line for line in lines if "/ip service" in line]
    assert service_lines and not any("port=" in line for line in service_lines)
    assert "/ip service set api-ssl disabled=no" in lines
    accept = [line for line in lines if "action=accept" in line]
    assert len(accept) == 1
    assert 'in-interface="kiosque" src-address=10.77.0.1/32 dst-port=8729' in accept[0]
    drops = [line for line in lines if "action=drop" in line]
    assert {"chain=input" in line for line in drops} == {True, False}  # input and forward
    # each rule goes on top of the list; added in reverse, they end up accept, drop input, drop forward
    order = [line for line in lines if line.startswith("{:local kqTop")]
    assert ["chain=forward" in order[0], "chain=input action=drop" in order[1], "action=accept" in order[2]] == [True] * 3


def test_script_is_idempotent_in_form():
    """Every object is added only when missing, then set; rules are removed by comment before being added."""
    lines = tunnel_lines(**script_values())
    for line in lines:
        if line.startswith("#"):
            continue
        for verb in (" add ",):
            if f"/interface wireguard{verb}" in line or f"/interface wireguard peers{verb}" in line \
                    or f"/ip address{verb}" in line:
                assert line.startswith(":if ([:len [") and "] = 0) do={" in line, line
    removes = [i for i, line in enumerate(lines) if line.startswith("/ip firewall filter remove")]
    adds = [i for i, line in enumerate(lines) if "/ip firewall filter add" in line]
    assert removes and adds and removes[0] < min(adds)


@pytest.mark.parametrize("host", ['hub"; /system reset-configuration', "hub example", "$(hub)", "hub\n.net"])
def test_script_refuses_hostile_hub_hosts(host):
    with pytest.raises(ScriptValueError):
        tunnel_lines(**script_values(hub_host=host))


@pytest.mark.parametrize("override", [
    {"private_key": "not-a-key"}, {"hub_public_key": "A" * 44}, {"interface": 'kq"; /quit'},
    {"address": "10.77.0.2/32"}, {"hub_address": "10.78.0.1"}, {"hub_address": "10.77.0.2"},
    {"address": "fd00::2/64"}, {"hub_port": 0}, {"api_ports": (70000,)}, {"api_ports": ()},
    {"service": "winbox"}, {"keepalive": 1},
])
def test_script_refuses_bad_values_without_repeating_keys(override):
    values = script_values(**override)
    with pytest.raises(ScriptValueError) as caught:
        tunnel_lines(**values)
    assert values["private_key"] not in str(caught.value) or override.get("private_key")


def test_script_takes_an_ip_endpoint_and_writes_it_plainly():
    lines = tunnel_lines(**script_values(hub_host="203.0.113.7", hub_port=443))
    assert any('endpoint-address="203.0.113.7" endpoint-port=443 ' in line for line in lines)


@given(st.text(min_size=1, max_size=40))
@PURE
def test_any_hub_host_is_refused_or_written_as_one_safe_string(host):
    try:
        lines = tunnel_lines(**script_values(hub_host=host))
    except ScriptValueError:
        return
    tunnel, _ = routeros_wg.read_script("\n".join(lines))
    written = tunnel.endpoint.rsplit(":", 1)[0]
    try:
        assert written == str(ipaddress.ip_address(host.strip().strip("[]")))
    except ValueError:
        assert written == host.strip().rstrip(".").lower()
