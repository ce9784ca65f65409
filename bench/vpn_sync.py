"""How long the hub's sync takes with 1,000 routers, in a network namespace of its own.

Generates the key pairs and tunnel addresses (timed too), then times `sync` from an empty
interface to all peers, a sync with nothing to change, a sync with a few routers added, changed
and removed, and the removal of every peer. `--per-command 1` shows the cost of one `wg set`
per peer instead of batches. Needs root, iproute2, wireguard-tools and the kernel module or
wireguard-go.

    sudo .venv/bin/python bench/vpn_sync.py [--peers 1000] [--per-command 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import portal.wireguard.interface as interface  # noqa: E402
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


if __name__ == "__main__":
    main()
