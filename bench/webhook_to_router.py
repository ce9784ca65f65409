"""Time from a provider's webhook arriving at Kiosque to the hotspot user existing on the router.

Each order goes through the real path: the buy form, FedaPay's sandbox checkout, approval, the
signed webhook to Kiosque, the status check with the provider, provisioning on the sandbox router
and the server-side login. The latency is taken from Kiosque's own records: the webhook's
`received_at` and the ticket's `created_on_router_at`.

Kiosque's own overhead is measured apart: each webhook's handling time minus the time it spent
waiting on the round trips it must make (the provider's status API, the router's API), both
clocked in the handling thread around the adapter's and the router client's calls.

    .venv/bin/python bench/webhook_to_router.py [--orders 200] [--latency 0 100] [--database URL]
"""

import argparse
import re
import statistics
import threading
import time
from functools import wraps

import requests

from staging import percentile, staged_kiosque

from portal.extensions import db
from portal.models import Order, OrderStatus, Ticket, WebhookEvent
from portal.payments.base import PaymentProvider
from portal.routeros.client import RouterClient
from portal.services import webhook_intake

_waiting = threading.local()
OWN_OVERHEAD: list[float] = []  # ms per webhook, outside the provider's and the router's round trips


def _clock_round_trips(cls, name: str) -> None:
    real = getattr(cls, name)

    @wraps(real)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            _waiting.seconds = getattr(_waiting, "seconds", 0.0) + time.perf_counter() - started

    setattr(cls, name, timed)


def _clock_webhooks() -> None:
    real = webhook_intake.receive

    @wraps(real)
    def timed(*args, **kwargs):
        _waiting.seconds, started = 0.0, time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            OWN_OVERHEAD.append((time.perf_counter() - started - _waiting.seconds) * 1000)

    webhook_intake.receive = timed


_clock_round_trips(PaymentProvider, "request")
for _call in ("add_user", "find_users", "active_login"):
    _clock_round_trips(RouterClient, _call)
_clock_webhooks()


def client_ip(n: int) -> str:
    return f"10.5.{n // 250}.{2 + n % 250}"


def buy(http: requests.Session, base: str, slug: str, plan_id: int, account_id: int, n: int) -> None:
    # The buy form carries the client's address from the hotspot page: the ticket is then logged
    # in from the server side, as on a real hotspot.
    page = http.get(f"{base}/r/{slug}", params={"ip": client_ip(n), "mac": ""}).text
    intent = re.search(r'name="intent" value="([^"]+)"', page).group(1)
    http.post(f"{base}/r/{slug}/buy", allow_redirects=False,
              data={"intent": intent, "plan_id": plan_id, "account_id": account_id, "ip": client_ip(n)})


def run(orders: int, latency_ms: int, database: str | None) -> dict:
    with staged_kiosque(database) as (app, base, stage):
        stage.router_server.latency = latency_ms / 1000
        router = stage.router
        account = next(a for a in router.accounts if a.provider == "fedapay")
        providers = app.extensions["kiosque.provider_sandbox"]
        http = requests.Session()
        for n in range(orders):
            stage.router_server.add_host(client_ip(n), f"02:00:00:00:{n >> 8 & 255:02X}:{n & 255:02X}")
            buy(http, base, router.slug, router.plans[0].id, account.id, n)
        OWN_OVERHEAD.clear()
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
            delays.append((created - received).total_seconds() * 1000)
        return {"latency": latency_ms, "orders": orders, "median": statistics.median(delays),
                "own": statistics.median(OWN_OVERHEAD), "own95": percentile(OWN_OVERHEAD, 0.95),
                "p95": percentile(delays, 0.95), "p99": percentile(delays, 0.99), "each": elapsed / orders * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--latency", type=int, nargs="+", default=[0, 100], help="router reply latency, ms")
    parser.add_argument("--database", help="a database to empty and use (default: a fresh SQLite file)")
    args = parser.parse_args()
    print(f"{'router latency':>14}  {'orders':>6}  {'median ms':>9}  {'p95 ms':>7}  {'p99 ms':>7}  {'approve→online ms':>17}  {'own overhead median/p95 ms':>26}")
    for latency in args.latency:
        r = run(args.orders, latency, args.database)
        print(f"{r['latency']:>11} ms  {r['orders']:>6}  {r['median']:>9.1f}  {r['p95']:>7.1f}  {r['p99']:>7.1f}  {r['each']:>17.1f}  {r['own']:>15.1f} / {r['own95']:.1f}")


if __name__ == "__main__":
    main()
