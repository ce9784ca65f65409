"""Test-only: the project's RouterClient, driven line by line from stdin, in another namespace.

Run as ``ip netns exec NS python -m tests.tunnel_probe HOST PORT USER PASSWORD``. Each stdin line
is a JSON request; each answer is one JSON line. One RouterClient stays open across requests,
so a request after a hub change shows whether the API session survived it.

    {"op": "facts"}
    {"op": "add_user", "name": "...", "password": "...", "profile": "1h", "comment": "..."}
    {"op": "find_users", "name": "..."}
    {"op": "time_add_users", "n": 50, "prefix": "t", "fresh": false}   # milliseconds each
    {"op": "connect", "host": "...", "port": 1234, "timeout": 2}      # a bare TCP connect
"""

from __future__ import annotations

import json
import socket
import sys
import time

from portal.routeros.client import RouterAddress, RouterClient, RouterError
from portal.routeros.egress import EgressPolicy


def _time_add_users(address: RouterAddress, shared: RouterClient, n: int, prefix: str, fresh: bool) -> list[float]:
    timings = []
    for index in range(n):
        name = f"{prefix}{index}"
        client = RouterClient(address) if fresh else shared
        started = time.perf_counter()
        client.add_user(name=name, password=name, profile="1h", comment=f"vc-100-{name}")
        timings.append((time.perf_counter() - started) * 1000)
        if fresh:
            client.close()
    return timings


def main() -> None:
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    # The tunnel and loopback addresses are not public: the egress policy allows this one host only.
    policy = EgressPolicy.from_settings(host, str(port))
    address = RouterAddress(host, port, user, password, timeout=5.0, policy=policy)
    client = RouterClient(address)
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        try:
            if op == "facts":
                answer = {"ok": True, "facts": client.facts().__dict__}
            elif op == "add_user":
                answer = {"ok": True, "id": client.add_user(**request)}
            elif op == "find_users":
                answer = {"ok": True, "users": [u.get("name") for u in client.find_users(**request)]}
            elif op == "time_add_users":
                answer = {"ok": True, "ms": _time_add_users(address, client, **request)}
            elif op == "connect":
                try:
                    with socket.create_connection((request["host"], request["port"]), timeout=request["timeout"]):
                        answer = {"ok": True}
                except OSError as exc:
                    answer = {"ok": False, "error": type(exc).__name__}
            else:
                answer = {"ok": False, "error": f"unknown op {op}"}
        except RouterError as exc:
            answer = {"ok": False, "error": str(exc), "type": type(exc).__name__}
        print(json.dumps(answer), flush=True)
    client.close()


if __name__ == "__main__":
    main()
