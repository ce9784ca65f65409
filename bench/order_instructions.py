"""The CPU instructions one paid order costs, counted by valgrind: a figure the host cannot move.

On a shared machine the same code's milliseconds move by ±20 % with the neighbours' load; its
instruction count does not. This script runs itself twice under callgrind (valgrind's instruction
counter), once with a few orders and once with more, and divides the difference by the orders
added: what one more order costs, the start and the staging cancelled out.

Each order is bought through the buy form, approved at the sandbox provider with its
notifications off, and its signed webhook posted at once, one order at a time: the whole paid
path runs (the status check, the ticket on the sandbox router, the client logged in). The count
covers everything in this one process: Kiosque serving the buyer and the webhook, the sandbox
provider and router answering it, and the client; not the database server. Use it to compare two
versions of the code, run after run; the load benchmark says what the machine holds.

    .venv/bin/python bench/order_instructions.py [--orders 10 60] [--database URL]

Needs valgrind (`apt-get install valgrind`); ~3 minutes.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import time

import requests

from staging import fedapay_headers, staged_kiosque

from portal.extensions import db
from portal.models import Order, OrderStatus

COUNTED = re.compile(r"Collected\s*:\s*(\d+)")


def paid_orders(orders: int, database: str | None) -> None:
    """Buy, approve and notify `orders` orders one at a time; exit non-zero unless each got its ticket."""
    with staged_kiosque(database) as (app, base, stage):
        router = stage.router
        account = next(a for a in router.accounts if a.provider == "fedapay")
        providers = app.extensions["kiosque.provider_sandbox"]
        providers.set_knobs(lose_notifications=True)  # this process notifies, at once
        http = requests.Session()
        webhook = f"{base}/webhooks/fedapay/{account.webhook_token}"
        for n in range(orders):
            client = f"10.5.{n // 250}.{2 + n % 250}"
            stage.router_server.add_host(client, f"02:00:00:00:{n >> 8 & 255:02X}:{n & 255:02X}")
            page = http.get(f"{base}/r/{router.slug}", params={"ip": client, "mac": ""}, timeout=30).text
            intent = re.search(r'name="intent" value="([^"]+)"', page).group(1)
            http.post(f"{base}/r/{router.slug}/buy", allow_redirects=False, timeout=30,
                      data={"intent": intent, "plan_id": router.plans[0].id, "account_id": account.id, "ip": client})
            reference = db.session.scalar(db.select(Order.provider_ref).order_by(Order.id.desc()))
            providers.approve("fedapay", reference)
            body = json.dumps({"name": "transaction.approved", "object": "transaction",
                               "entity": {"id": int(reference), "status": "approved"}}).encode()
            http.post(webhook, data=body, headers=fedapay_headers(body), timeout=30).raise_for_status()
        db.session.expire_all()
        done = db.session.scalar(db.select(db.func.count()).where(Order.status == OrderStatus.PROVISIONED))
        if done != orders:
            raise SystemExit(f"{done} of {orders} orders provisioned")


def counted(orders: int, database: str | None) -> int:
    """Instructions the whole run of `paid_orders(orders)` took, under callgrind."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, __file__, "--inner", str(orders)]
    if database:
        command += ["--database", database]
    run = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    found = COUNTED.search(run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"the run with {orders} orders failed:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs=2, default=[10, 60], metavar=("FEW", "MORE"))
    parser.add_argument("--database", help="SQLAlchemy URL, emptied first (default: a fresh SQLite file)")
    parser.add_argument("--inner", type=int, help=argparse.SUPPRESS)  # one counted run
    args = parser.parse_args()
    if args.inner is not None:
        return paid_orders(args.inner, args.database)
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    few, more = sorted(args.orders)
    if few >= more:
        raise SystemExit("--orders needs two different counts")
    started = time.monotonic()
    low, high = counted(few, args.database), counted(more, args.database)
    print(f"{few} orders: {low:,} instructions; {more} orders: {high:,}; "
          f"{(high - low) / (more - few) / 1e6:.2f} million per paid order ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
