"""How long one ticket takes to provision on a router: connect + login + add_user.

Runs against the sandbox router at 0 ms and 100 ms injected reply latency, once reusing the
shared connection (router_client) and once opening a new connection per ticket, then prints
median and p95 in milliseconds.

    .venv/bin/python bench/router_provisioning.py [--n 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from portal.routeros.client import RouterAddress, RouterClient, close_all, router_client  # noqa: E402
from portal.routeros.egress import EgressPolicy  # noqa: E402
from sandbox import ROUTER_EGRESS  # noqa: E402
from sandbox.routeros import SandboxRouter  # noqa: E402

PASSWORD = "bench-password"


def provision_shared(address: RouterAddress, name: str) -> None:
    router_client(address).add_user(name=name, password=name, profile="1d", comment=f"vc-100-01.01.25-{name}")


def provision_fresh(address: RouterAddress, name: str) -> None:
    client = RouterClient(address)
    try:
        client.add_user(name=name, password=name, profile="1d", comment=f"vc-100-01.01.25-{name}")
    finally:
        client.close()


def measure(
    provision: Callable[[RouterAddress, str], None], address: RouterAddress, n: int, prefix: str
) -> list[float]:
    """Milliseconds for each of ``n`` provisionings; the first one includes connect and login."""
    timings = []
    for index in range(n):
        started = time.perf_counter()
        provision(address, f"{prefix}{index}")
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="tickets per configuration (default 50)")
    args = parser.parse_args()
    modes = {"reuse": provision_shared, "new per ticket": provision_fresh}
    print(f"{'latency':>8}  {'mode':<15} {'n':>4}  {'median ms':>9}  {'p95 ms':>8}")
    with SandboxRouter(password=PASSWORD) as sandbox:
        policy = EgressPolicy.from_settings(ROUTER_EGRESS["ROUTER_ALLOWED_NETWORKS"], ROUTER_EGRESS["ROUTER_ALLOWED_PORTS"])
        address = RouterAddress(sandbox.host, sandbox.port, "admin", PASSWORD, timeout=5.0, policy=policy)
        for latency in (0.0, 0.1):
            sandbox.latency = latency
            for mode, provision in modes.items():
                timings = measure(provision, address, args.n, prefix=f"b{int(latency * 1000)}{mode[0]}")
                print(f"{latency * 1000:>6.0f} ms  {mode:<15} {args.n:>4}  "
                      f"{statistics.median(timings):>9.1f}  {p95(timings):>8.1f}")
                close_all()
        print(f"connections opened: {sandbox.connections}")


if __name__ == "__main__":
    main()
