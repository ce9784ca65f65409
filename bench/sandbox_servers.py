"""The sandbox router, providers or mailbox, served alone in this process for the load benchmark.

Run in processes of their own, they do not share a GIL with the load generator nor with each
other, and their CPU use can be read apart. Each prints one JSON line saying where it listens,
then serves until its standard input closes (the benchmark holds the other end: if it dies, the
servers stop too).

The providers are served by gunicorn (one process, its threads, connections kept alive) as a
provider's API is: werkzeug's development server, which serves them in the tests and the demo,
answers every request with `Connection: close`, so each status call would open a new connection
and the server a new thread for it, costs a real API does not put on Kiosque nor itself.

    python bench/sandbox_servers.py router --password PASS [--latency 0.0] [--hosts 30000]
    python bench/sandbox_servers.py providers --fedapay-webhook URL
    python bench/sandbox_servers.py mail
"""

import argparse
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from flask import Flask
from gunicorn.app.base import BaseApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sandbox import demo  # noqa: E402
from sandbox.mail import Mailbox  # noqa: E402
from sandbox.providers import ProviderSandbox  # noqa: E402
from sandbox.routeros import SandboxRouter  # noqa: E402

FIRST_CLIENT = ipaddress.IPv4Address("10.64.0.2")  # the n-th order's client is FIRST_CLIENT + n


def client_ip(n: int) -> str:
    return str(FIRST_CLIENT + n)


def client_mac(n: int) -> str:
    return "02:00:" + ":".join(f"{b:02X}" for b in (n + 1).to_bytes(4, "big"))


def serve_router(args: argparse.Namespace) -> None:
    router = SandboxRouter(password=args.password)
    router.latency = args.latency
    for n in range(args.hosts):  # the hotspot's clients, so that the server-side login succeeds
        router.add_host(client_ip(n), client_mac(n))
    router.start()
    announce({"host": router.host, "port": router.port})
    try:
        sys.stdin.read()  # returns at EOF: the benchmark ended or died
    finally:
        router.stop()


class KeptAlive(BaseApplication):
    """A WSGI app under gunicorn in this process: one worker, threads, connections kept alive."""

    def __init__(self, app: Flask, options: dict) -> None:
        self.app, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.app


def serve_providers(args: argparse.Namespace) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    providers = ProviderSandbox(public_url=f"http://127.0.0.1:{port}")
    providers.add_account("fedapay", demo.CREDENTIALS["fedapay"], webhook_url=args.fedapay_webhook)
    app = Flask(__name__)
    app.register_blueprint(providers.blueprint())

    def when_ready(server) -> None:  # listening: the worker takes the connections waiting meanwhile
        announce({"base_url": providers.base_url, "settings": providers.api_settings()})
        threading.Thread(target=stop_at_eof, daemon=True).start()

    KeptAlive(app, {
        "bind": f"127.0.0.1:{port}", "workers": 1, "worker_class": "gthread",
        "threads": 128,  # enough for --provider-latency: each call holds a thread while it waits
        "keepalive": 75,  # seconds, nginx's default
        "graceful_timeout": 1, "loglevel": "warning", "when_ready": when_ready,
    }).run()


def stop_at_eof() -> None:
    sys.stdin.read()
    os.kill(os.getpid(), signal.SIGTERM)  # gunicorn's own way down


def serve_mail(args: argparse.Namespace) -> None:
    """An SMTP server for the owners' sale emails, standing in for the operator's mail relay."""
    mailbox = Mailbox().start()
    announce({"settings": mailbox.settings()})
    try:
        sys.stdin.read()
    finally:
        mailbox.stop()


def announce(where: dict) -> None:
    print(json.dumps(where), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    router = roles.add_parser("router")
    router.add_argument("--password", required=True)
    router.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    router.add_argument("--hosts", type=int, default=0, help="hotspot hosts to create (client addresses)")
    providers = roles.add_parser("providers")
    providers.add_argument("--fedapay-webhook", required=True, help="where FedaPay notifications go")
    roles.add_parser("mail")
    args = parser.parse_args()
    {"router": serve_router, "providers": serve_providers, "mail": serve_mail}[args.role](args)


if __name__ == "__main__":
    main()
