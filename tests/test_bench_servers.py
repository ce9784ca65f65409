"""The load benchmark's stand-ins (bench/sandbox_servers.py): they start, serve as their real
counterparts do, and stop with the benchmark."""

import http.client
import json
import select
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from sandbox import demo

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmarks_provider_api_keeps_connections_alive_and_stops_with_the_benchmark():
    """A provider's API keeps connections alive, so Kiosque's status calls reuse theirs: the
    stand-in must too (werkzeug's development server closes each after one answer)."""
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sandbox_servers.py"), "providers", "--fedapay-webhook",
         "http://127.0.0.1:9/webhooks/fedapay/unused"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 60)  # it says where it listens once it does
        assert ready, "the provider stand-in did not start"
        where = json.loads(server.stdout.readline())
        api = urlsplit(where["settings"]["FEDAPAY_SANDBOX_API_URL"])
        connection = http.client.HTTPConnection(api.hostname, api.port, timeout=10)
        key = demo.CREDENTIALS["fedapay"]["secret_key"]
        sockets = []
        for _ in range(3):
            connection.request("GET", f"{api.path}/v1/transactions/1", headers={"Authorization": f"Bearer {key}"})
            answer = connection.getresponse()
            body = json.loads(answer.read())
            assert answer.status == 404 and body, body  # FedaPay's answer for a transaction it does not have
            assert not answer.will_close
            sockets.append(connection.sock)
        assert sockets[0] is sockets[1] is sockets[2]  # one connection for the three calls
        connection.close()
    finally:
        server.stdin.close()  # the benchmark's end, or its death
        assert server.wait(timeout=30) == 0
