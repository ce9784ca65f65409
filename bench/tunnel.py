"""Through the WireGuard tunnel: time to the first handshake, and provisioning latency versus loopback.

Builds the test bed of tests/test_wireguard_tunnel.py (network namespaces, documentation
addresses, hub configured by `sync`, router side from the generated RouterOS script; needs
root, iproute2, wireguard-tools and the kernel module or wireguard-go), then measures:

- handshake: from the moment the router side starts applying the script's WireGuard lines (the
  owner runs the script, then clicks "J'ai exécuté le script"), and from the moment it is done,
  to the first handshake the hub reports, over --trials fresh beds (the hub is polled every
  10 ms, each poll a `wg show` of a few ms);
- provisioning: RouterClient.add_user round trips from the hub's namespace to the sandbox router
  listening on the router's tunnel address, then to a sandbox router on loopback in the same
  namespace, reusing one API session and opening one per ticket.

    sudo .venv/bin/python bench/tunnel.py [--trials 10] [--n 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from portal.wireguard import read_state, sync  # noqa: E402
from tests import netns  # noqa: E402
from tests.test_wireguard_tunnel import Probe, RouterSide, make_bed, start_sandbox_router  # noqa: E402


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def first_handshake_ms() -> tuple[float, float]:
    """Milliseconds to the first handshake from the start of the router side, and from its end."""
    with netns.Namespaces() as spaces:
        bed = make_bed(spaces, "a")
        sync(bed.hub.runner, bed.config("a"))
        key = bed.routers["a"].keys.public
        started = time.perf_counter()
        bed.configure_router("a")
        configured = time.perf_counter()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = read_state(bed.hub.runner, bed.interface)
            if state and state.peers[key].latest_handshake is not None:
                now = time.perf_counter()
                return (now - started) * 1000, (now - configured) * 1000
            time.sleep(0.01)
        raise SystemExit("no handshake within 60 s")


def provisioning(n: int) -> dict[str, list[float]]:
    results = {}
    with netns.Namespaces() as spaces:
        bed = make_bed(spaces, "a")
        sync(bed.hub.runner, bed.config("a"))
        bed.configure_router("a")
        bed.wait_for_handshake("a")
        side = bed.routers["a"]
        start_sandbox_router(side)
        start_sandbox_router(RouterSide("hub", bed.hub, side.keys, "127.0.0.1", ""))  # loopback, hub's namespace
        for where, host in (("tunnel", side.address), ("loopback", "127.0.0.1")):
            probe = Probe(bed.hub, host)
            for mode, fresh in (("reuse", False), ("new per ticket", True)):
                answer = probe.ask(within=300, op="time_add_users", n=n, prefix=f"{where[0]}{mode[0]}", fresh=fresh)
                assert answer["ok"], answer
                results[f"{where} / {mode}"] = answer["ms"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="fresh beds for the handshake time (default 10)")
    parser.add_argument("--n", type=int, default=200, help="tickets per provisioning row (default 200)")
    args = parser.parse_args()
    reason = netns.unavailable_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")

    trials = [first_handshake_ms() for _ in range(args.trials)]
    for index, what in enumerate(("starts (interface created, key, peer, address)", "is configured")):
        values = [trial[index] for trial in trials]
        print(f"first handshake after the router side {what}, {args.trials} trials: "
              f"median {statistics.median(values):.0f} ms, max {max(values):.0f} ms")
    print(f"{'path / connection':<28} {'n':>4}  {'median ms':>9}  {'p95 ms':>8}  {'first ms':>8}")
    for label, timings in provisioning(args.n).items():
        print(f"{label:<28} {len(timings):>4}  {statistics.median(timings):>9.2f}  {p95(timings):>8.2f}  "
              f"{timings[0]:>8.2f}")


if __name__ == "__main__":
    main()
