"""Time from a provider's webhook arriving at Kiosque to the hotspot user existing on the router.

Each order goes through the real path: the buy form, FedaPay's sandbox checkout, approval, the
signed webhook to Kiosque, the status check with the provider, provisioning on the sandbox router
and the server-side login. The figure is taken from Kiosque's own records: the webhook's
`received_at` and the ticket's `created_on_router_at`.

    .venv/bin/python bench/webhook_to_router.py [--orders 200] [--latency 0 100] [--database URL]
"""

import argparse
import re
import statistics
import time

import requests

from staging import percentile, staged_kiosque

from portal.extensions import db
from portal.models import Order, OrderStatus, Ticket, WebhookEvent
from portal.services.orders import as_utc


def buy(http: requests.Session, base: str, slug: str, plan_id: int, account_id: int, n: int) -> None:
    page = http.get(f"{base}/r/{slug}", params={"ip": f"10.5.{n // 250}.{2 + n % 250}", "mac": ""}).text
    intent = re.search(r'name="intent" value="([^"]+)"', page).group(1)
    http.post(f"{base}/r/{slug}/buy", allow_redirects=False,
              data={"intent": intent, "plan_id": plan_id, "account_id": account_id})


def run(orders: int, latency_ms: int, database: str | None) -> dict:
    with staged_kiosque(database) as (app, base, stage):
        stage.router_server.latency = latency_ms / 1000
        router = stage.router
        account = next(a for a in router.accounts if a.provider == "fedapay")
        providers = app.extensions["kiosque.provider_sandbox"]
        http = requests.Session()
        for n in range(orders):
            buy(http, base, router.slug, router.plans[0].id, account.id, n)
        started = time.monotonic()
        # One payment at a time: this measures the path itself, not a queue behind a burst.
        for order_id, ref in db.session.execute(db.select(Order.id, Order.provider_ref)).all():
            providers.approve("fedapay", ref)
            while db.session.scalar(db.select(Order.status).where(Order.id == order_id)) != OrderStatus.PROVISIONED:
                if time.monotonic() - started > 30 + orders:
                    raise SystemExit("orders not provisioned in time")
                time.sleep(0.02)  # the server shares this process: leave it the CPU
                db.session.expire_all()
        elapsed = time.monotonic() - started
        delays = []
        for order in db.session.scalars(db.select(Order)):
            received = db.session.scalar(db.select(db.func.min(WebhookEvent.received_at)).where(WebhookEvent.order_id == order.id))
            created = db.session.scalar(db.select(Ticket.created_on_router_at).where(Ticket.order_id == order.id))
            delays.append((as_utc(created) - as_utc(received)).total_seconds() * 1000)
        return {"latency": latency_ms, "orders": orders, "median": statistics.median(delays),
                "p95": percentile(delays, 0.95), "p99": percentile(delays, 0.99), "each": elapsed / orders * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--latency", type=int, nargs="+", default=[0, 100], help="router reply latency, ms")
    parser.add_argument("--database", help="a database to empty and use (default: a fresh SQLite file)")
    args = parser.parse_args()
    print(f"{'router latency':>14}  {'orders':>6}  {'median ms':>9}  {'p95 ms':>7}  {'p99 ms':>7}  {'approve→online ms':>17}")
    for latency in args.latency:
        r = run(args.orders, latency, args.database)
        print(f"{r['latency']:>11} ms  {r['orders']:>6}  {r['median']:>9.1f}  {r['p95']:>7.1f}  {r['p99']:>7.1f}  {r['each']:>17.1f}")


if __name__ == "__main__":
    main()
