"""The sandbox router, providers or mailbox, served alone in this process for the load benchmark.

Run in processes of their own, they do not share a GIL with the load generator nor with each
other, and their CPU use can be read apart. Each prints one JSON line saying where it listens,
then serves until its standard input closes (the benchmark holds the other end: if it dies, the
servers stop too).

    python bench/sandbox_servers.py router --password PASS [--latency 0.0] [--hosts 30000]
    python bench/sandbox_servers.py providers --fedapay-webhook URL
    python bench/sandbox_servers.py mail
"""

import argparse
import ipaddress
import json
import sys
from pathlib import Path

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


def serve_providers(args: argparse.Namespace) -> None:
    providers = ProviderSandbox().start()
    providers.add_account("fedapay", demo.CREDENTIALS["fedapay"], webhook_url=args.fedapay_webhook)
    announce({"base_url": providers.base_url, "settings": providers.api_settings()})
    try:
        sys.stdin.read()
    finally:
        providers.stop()


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
