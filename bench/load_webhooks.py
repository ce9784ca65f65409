"""A steady stream of paid webhooks against gunicorn + PostgreSQL + the sandbox router.

Kiosque runs under gunicorn (2 worker processes, gunicorn.conf.py) on PostgreSQL; the sandbox
providers and router run in this process. Orders are bought first through the buy form, then
approved at a steady rate for the run's duration: each approval makes the sandbox provider send
its signed webhook. At the end: throughput, webhook→ticket latency from Kiosque's own records,
and the two figures that must be zero: orders paid but without a ticket (lost) and orders with
more than one hotspot user (duplicated). A worker process runs too, as in production.

    .venv/bin/python bench/load_webhooks.py [--seconds 60] [--rate 20]
        [--database postgresql+psycopg://kiosque:kiosque@127.0.0.1/kiosque_bench]

The database is emptied first: give it one made for the benchmark.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from staging import percentile

from portal import create_app
from portal.extensions import db
from portal.models import Order, OrderStatus, Ticket, WebhookEvent
from sandbox import ROUTER_EGRESS, demo
from sandbox.providers import ProviderSandbox
from sandbox.routeros import SandboxRouter

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=float, default=20, help="approvals per second")
    parser.add_argument("--database", default=os.environ.get(
        "KIOSQUE_BENCH_DATABASE_URL", "postgresql+psycopg://kiosque:kiosque@127.0.0.1/kiosque_bench"))
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    providers = ProviderSandbox().start()
    router_server = SandboxRouter(password="bench-router").start()
    config = {
        "SECRET_KEY": "bench-secret", "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SQLALCHEMY_DATABASE_URI": args.database, "PUBLIC_URL": base, "MAIL_SUPPRESS_SEND": True,
        "RATELIMIT_ENABLED": False, **providers.api_settings(), **ROUTER_EGRESS,
    }
    app = create_app({**config, "ENV": "bench"})
    with app.app_context():
        db.drop_all()
        db.create_all()
        router = demo.seed_shop(router_server.host, router_server.port, "bench-router", dns_name="wifi.net")
        demo.register_accounts(providers, router, base)
        account = next(a for a in router.accounts if a.provider == "fedapay")
        slug, plan_id, account_id = router.slug, router.plans[0].id, account.id

    env = {**os.environ, "PORTAL_ENV": "production", "WEB_CONCURRENCY": "2", "PORT": str(port),
           "PORTAL_LOG_LEVEL": "warning"}
    env.update({f"PORTAL_{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal", "worker", "--interval", "1"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        http = requests.Session()
        for _ in range(100):
            try:
                http.get(f"{base}/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        count = int(args.seconds * args.rate)
        for n in range(count):
            page = http.get(f"{base}/r/{slug}", params={"ip": f"10.5.{n // 250}.{2 + n % 250}"}).text
            intent = re.search(r'name="intent" value="([^"]+)"', page).group(1)
            http.post(f"{base}/r/{slug}/buy", allow_redirects=False,
                      data={"intent": intent, "plan_id": plan_id, "account_id": account_id})
        with app.app_context():
            refs = db.session.scalars(db.select(Order.provider_ref).order_by(Order.id)).all()
        started = time.monotonic()
        for n, ref in enumerate(refs):  # the steady stream
            time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            providers.approve("fedapay", ref)
        stream_seconds = time.monotonic() - started
        with app.app_context():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = db.session.scalar(db.select(db.func.count(Order.id)).where(Order.status == OrderStatus.PROVISIONED))
                if done == len(refs):
                    break
                db.session.remove()
                time.sleep(0.2)
            finished = time.monotonic() - started
            orders = db.session.scalars(db.select(Order)).all()
            latencies = []
            for order in orders:
                received = db.session.scalar(db.select(db.func.min(WebhookEvent.received_at))
                                             .where(WebhookEvent.order_id == order.id))
                created = db.session.scalar(db.select(Ticket.created_on_router_at).where(Ticket.order_id == order.id))
                if received and created:
                    latencies.append((created - received).total_seconds() * 1000)
            lost = sum(o.status != OrderStatus.PROVISIONED for o in orders)
    finally:
        web.terminate()
        worker.terminate()
        web.wait(30)
        worker.wait(30)
        providers.stop()
    per_order = Counter(u["comment"].rsplit("-", 1)[1] for u in router_server.users())
    duplicated = sum(1 for n in per_order.values() if n > 1)
    router_server.stop()
    print(f"orders approved      {len(refs)} over {stream_seconds:.1f} s ({len(refs) / stream_seconds:.1f}/s)")
    print(f"all provisioned in   {finished:.1f} s -> throughput {len(refs) - lost} tickets / {finished:.1f} s = "
          f"{(len(refs) - lost) / finished:.1f}/s")
    print(f"webhook -> ticket    median {percentile(latencies, 0.5):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
          f"p99 {percentile(latencies, 0.99):.1f} ms")
    print(f"lost tickets         {lost}")
    print(f"duplicated tickets   {duplicated}")


if __name__ == "__main__":
    main()
