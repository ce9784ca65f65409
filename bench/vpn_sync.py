"""How long the hub's sync takes with 1,000 routers, in a network namespace of its own.

First the adapter alone: generates the key pairs and tunnel addresses (timed too), then times
`sync` from an empty interface to all peers, a sync with nothing to change, a sync with a few
routers added, changed and removed, and the removal of every peer. `--per-command 1` shows the
cost of one `wg set` per peer instead of batches.

Then the command the operator runs, `flask --app portal vpn sync`, in the namespace, against a
SQLite database holding that many tunnelled routers: wall-clock time of the whole process
(Python and the app starting, the routers read, the interface synced), and the part spent
reading the routers and building the hub's configuration.

Needs root, iproute2, wireguard-tools and the kernel module or wireguard-go.

    sudo .venv/bin/python bench/vpn_sync.py [--peers 1000] [--per-command 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from cryptography.fernet import Fernet  # noqa: E402

import portal.wireguard.interface as interface  # noqa: E402
from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Router, RouterConnection  # noqa: E402
from portal.services import owners, tunnel  # noqa: E402
from portal.wireguard import HubConfig, KeyPair, Peer, allocate, hub_address, read_state, sync, tunnel_network  # noqa: E402
from tests import netns  # noqa: E402


def timed(label: str, action):
    started = time.perf_counter()
    result = action()
    print(f"{label:<52} {1000 * (time.perf_counter() - started):>9.1f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--per-command", type=int, default=interface.PEERS_PER_COMMAND)
    parser.add_argument("--churn", type=int, default=10, help="routers added, changed and removed (default 10 each)")
    args = parser.parse_args()
    reason = netns.unavailable_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    interface.PEERS_PER_COMMAND = args.per_command
    apply_plan = interface.apply_peer_plan
    interface.apply_peer_plan = lambda runner, name, plan, per_command=args.per_command: apply_plan(
        runner, name, plan, per_command=per_command)

    network = tunnel_network("10.77.0.0/16")
    pairs = timed(f"generate {args.peers} key pairs", lambda: [KeyPair.generate() for _ in range(args.peers + args.churn)])

    def addresses():
        taken: list[str] = []
        for _ in range(args.peers + args.churn):
            taken.append(str(allocate(network, taken)))
        return taken

    taken = timed(f"allocate {args.peers + args.churn} addresses (one by one)", addresses)
    peers = tuple(Peer.router(pair.public, address) for pair, address in zip(pairs, taken, strict=True))
    with netns.Namespaces() as spaces:
        hub = spaces.add("hub")
        name = hub.interface("wg")
        config = HubConfig(interface=name, address=hub_address(network), listen_port=51820,
                           private_key=KeyPair.generate().private, peers=peers[:args.peers])
        report = timed(f"sync: create the interface and add {args.peers} peers", lambda: sync(hub.runner, config))
        assert len(report.plan.add) == args.peers
        state = read_state(hub.runner, name)
        assert len(state.peers) == args.peers
        report = timed("sync: nothing to change", lambda: sync(hub.runner, config))
        assert not report.changed
        n, churn = args.peers, args.churn
        moved = replace(peers[churn], allowed_ips=peers[n + churn - 1].allowed_ips)  # a free address
        changed = replace(config, peers=(moved, *peers[churn + 1:n], *peers[n:n + churn - 1]))
        report = timed(f"sync: {churn - 1} added, 1 changed, {churn} removed", lambda: sync(hub.runner, changed))
        assert (len(report.plan.add), len(report.plan.change), len(report.plan.remove)) == (churn - 1, 1, churn)
        report = timed("read the state (wg show dump)", lambda: read_state(hub.runner, name))
        report = timed(f"sync: remove all {len(changed.peers)} peers", lambda: sync(hub.runner, replace(config, peers=())))
        assert len(read_state(hub.runner, name).peers) == 0
    command(network, pairs[:args.peers], taken[:args.peers])


def command(network, pairs: list[KeyPair], addresses: list[str]) -> None:
    """`flask --app portal vpn sync` with that many tunnelled routers in the database."""
    with tempfile.TemporaryDirectory() as workdir, netns.Namespaces() as spaces:
        hub = spaces.add("hub")
        settings = {"ENV": "testing", "SECRET_KEY": "bench", "ENCRYPTION_KEY": Fernet.generate_key().decode(),
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir}/bench.db", "VPN_ENDPOINT": "203.0.113.1:51820",
                    "VPN_NETWORK": str(network), "VPN_INTERFACE": hub.interface("wg")}
        app = create_app(settings)
        with app.app_context():
            db.create_all()
            owner = owners.create_owner("bench@example.com", "bench-password")
            db.session.add_all(Router(owner=owner, name=f"r{n}", host="", api_username="kiosque", api_password="x",
                                      connection=RouterConnection.TUNNEL, tunnel_address=address,
                                      tunnel_private_key=pair.private, tunnel_public_key=pair.public)
                               for n, (pair, address) in enumerate(zip(pairs, addresses, strict=True)))
            db.session.commit()
            timed(f"read {len(pairs)} tunnelled routers, build the hub's configuration",
                  lambda: tunnel.hub_config(tunnel.hub()))
        env = {**os.environ, **{f"PORTAL_{key}": value for key, value in settings.items()}}
        for what in (f"create the interface and add {len(pairs)} peers", "nothing to change"):
            done = timed(f"flask vpn sync, whole process: {what}", lambda: hub.run(
                [sys.executable, "-m", "flask", "--app", "portal", "vpn", "sync"], env=env, cwd=ROOT, timeout=300))
            print(f"    {done.stdout.strip()}")


if __name__ == "__main__":
    main()
