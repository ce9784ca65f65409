"""How the order page's poll latency grows with the number of orders in the database.

Fills the database with orders in steps (10 000, 100 000, 1 000 000 by default), and at each step
times `GET /o/<code>/status` (the fragment a buyer's page polls every second) for random pending
orders, in-process through the Flask test client so the figure is Kiosque's and the database's.

    .venv/bin/python bench/poll_scaling.py [--sizes 10000 100000 1000000] [--polls 500]
        [--database postgresql+psycopg://kiosque:kiosque@127.0.0.1/kiosque_bench]

Without --database it uses a fresh SQLite file; a database given is emptied first.
"""

import argparse
import random
import secrets
import statistics
import tempfile
import time

from cryptography.fernet import Fernet
from sqlalchemy import insert

from staging import percentile

from portal import create_app
from portal.extensions import db
from portal.models import ORDER_CODE_ALPHABET, Order, OrderStatus
from sandbox import ROUTER_EGRESS, demo
from sandbox.routeros import SandboxRouter

CHUNK = 10_000


def fill(router, account, start: int, stop: int) -> list[str]:
    """Insert orders start..stop (one in ten still pending); returns the pending ones' codes."""
    pending = []
    for first in range(start, stop, CHUNK):
        rows = []
        for n in range(first, min(first + CHUNK, stop)):
            code = "".join(random.choices(ORDER_CODE_ALPHABET, k=10))
            status = OrderStatus.PENDING if n % 10 == 0 else OrderStatus.PROVISIONED
            if status == OrderStatus.PENDING:
                pending.append(code)
            rows.append({"code": code, "intent": secrets.token_hex(12), "owner_id": router.owner_id,
                         "router_id": router.id, "account_id": account.id, "provider": account.provider,
                         "plan_label": "1 heure", "profile": "1h", "amount": 200, "currency": "XOF",
                         "status": status, "provider_ref": f"ref-{n}", "payer_phone": "2290197000000"})
        db.session.execute(insert(Order), rows)
        db.session.commit()
    return pending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--polls", type=int, default=500)
    parser.add_argument("--database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SandboxRouter(password="bench") as router_server:
        app = create_app({
            "ENV": "bench", "SECRET_KEY": "bench", "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SQLALCHEMY_DATABASE_URI": args.database or f"sqlite:///{tmp}/poll.db",
            "ORDER_POLL_AFTER": 10**9,  # never ask the provider: time the page alone
            "LOG_LEVEL": "WARNING", **ROUTER_EGRESS,
        })
        with app.app_context():
            db.drop_all()
            db.create_all()
            router = demo.seed_shop(router_server.host, router_server.port, "bench", dns_name="wifi.net")
            account = router.accounts[0]
            client = app.test_client()
            pending: list[str] = []
            print(f"{'orders':>9}  {'median ms':>9}  {'p95 ms':>7}  {'p99 ms':>7}")
            done = 0
            for size in sorted(args.sizes):
                pending += fill(router, account, done, size)
                done = size
                timings = []
                for code in random.choices(pending, k=args.polls):
                    started = time.perf_counter()
                    response = client.get(f"/o/{code}/status", headers={"HX-Request": "true"})
                    timings.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
                print(f"{size:>9}  {statistics.median(timings):>9.2f}  {percentile(timings, 0.95):>7.2f}  "
                      f"{percentile(timings, 0.99):>7.2f}")
            db.session.remove()
            db.drop_all()


if __name__ == "__main__":
    main()
