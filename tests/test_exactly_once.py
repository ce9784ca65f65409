"""Money received becomes exactly one ticket: duplicates, races between processes, a crash mid-way."""

import json
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
import requests

from portal.extensions import db
from portal.models import Order, OrderStatus, Ticket, WebhookEvent, utcnow
from portal.routeros.client import RouterClient
from portal.services import payment_checks, worker
from tests.provider_signing import fedapay_signature
from tests.conftest import Buyer, CREDENTIALS, latest_order, users_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app_config(app_config):
    return {**app_config, "ORDER_POLL_AFTER": 0, "WORKER_POLL_AFTER": 0, "ORDER_CLAIM_SECONDS": 11}


def post_webhook(url: str, body: bytes, signature: str) -> int:
    """One provider delivery (module level, so other processes can run it)."""
    return requests.post(url, data=body, timeout=30,
                         headers={"Content-Type": "application/json", "X-FEDAPAY-SIGNATURE": signature}).status_code


def test_fifty_identical_webhooks_at_once_make_one_ticket(shop, live_server, provider_sandbox, router_server):
    provider_sandbox.set_knobs(lose_notifications=True)
    Buyer(live_server, shop).buy("fedapay")
    order = latest_order()
    provider_sandbox.approve("fedapay", order.provider_ref)
    account = next(a for a in shop.accounts if a.provider == "fedapay")
    url = f"{live_server}/webhooks/fedapay/{account.webhook_token}"
    body = json.dumps({"name": "transaction.approved", "object": "transaction",
                       "entity": {"id": int(order.provider_ref), "status": "approved"}}).encode()
    signature = fedapay_signature(CREDENTIALS["fedapay"]["webhook_secret"], body, int(time.time()))
    with ThreadPoolExecutor(25) as threads, ProcessPoolExecutor(4, mp_context=get_context("spawn")) as processes:
        futures = [threads.submit(post_webhook, url, body, signature) for _ in range(25)]
        futures += [processes.submit(post_webhook, url, body, signature) for _ in range(25)]
        codes = [f.result() for f in futures]
    assert set(codes) <= {200, 503} and codes.count(200) >= 1
    order = latest_order()
    assert order.status == OrderStatus.PROVISIONED
    assert len(users_for(router_server, order)) == 1
    assert db.session.scalar(db.select(db.func.count(Ticket.id))) == 1
    assert [e.kind for e in order.events].count("provisioned") == 1
    assert db.session.scalar(db.select(db.func.count(WebhookEvent.id))) == 50


def worker_process(app_config: dict, live_server: str) -> subprocess.Popen:
    """`flask --app portal worker` in its own process, on the same database and sandboxes."""
    env = {**os.environ, "PORTAL_ENV": "testing", "PORTAL_MAIL_SUPPRESS_SEND": "true"}
    for key in ("SECRET_KEY", "ENCRYPTION_KEY", "SQLALCHEMY_DATABASE_URI", "FEDAPAY_SANDBOX_API_URL",
                "FEDAPAY_API_URL", "CINETPAY_API_URL", "FEEXPAY_API_URL", "ORDER_CLAIM_SECONDS", "ROUTER_TIMEOUT",
                "WORKER_POLL_AFTER", "ROUTER_ALLOWED_NETWORKS", "ROUTER_ALLOWED_PORTS"):
        value = app_config[key]
        env[f"PORTAL_{key}"] = value if isinstance(value, str) else json.dumps(value)
    env["PORTAL_PUBLIC_URL"] = live_server
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal", "worker", "--interval", "0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_webhooks_polling_and_workers_racing_over_a_hundred_orders(app, shop, live_server, provider_sandbox,
                                                                   router_server):
    provider_sandbox.set_knobs(duplicate_notifications=2)
    buyer = Buyer(live_server, shop)
    for n in range(100):
        buyer.buy(random.choice(["fedapay", "cinetpay", "feexpay"]), plan_label=random.choice(["1 heure", "1 jour"]))
    pending = db.session.execute(db.select(Order.code, Order.provider, Order.provider_ref)).all()
    assert len(pending) == 100
    workers = [worker_process(app.config, live_server) for _ in range(2)]
    done = threading.Event()

    def poll_pages():
        http = requests.Session()
        while not done.is_set():
            code = random.choice(pending).code
            http.get(f"{live_server}/o/{code}/status", headers={"HX-Request": "true"}, timeout=30)

    pollers = [threading.Thread(target=poll_pages) for _ in range(4)]
    for thread in pollers:
        thread.start()
    try:
        for code, provider, ref in pending:
            provider_sandbox.approve(provider, ref)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            db.session.expire_all()
            if db.session.scalar(db.select(db.func.count(Order.id)).where(Order.status == OrderStatus.PROVISIONED)) == 100:
                break
            worker.sweep()  # the test process is a third worker
            time.sleep(0.2)
    finally:
        done.set()
        for thread in pollers:
            thread.join(30)
        for process in workers:
            process.terminate()
            _, errors = process.communicate(timeout=30)
            assert b"Traceback" not in errors, errors.decode()[-2000:]
    db.session.expire_all()
    statuses = db.session.scalars(db.select(Order.status)).all()
    assert statuses.count(OrderStatus.PROVISIONED) == 100, statuses
    users = router_server.users()
    assert len(users) == 100
    assert sorted(u["comment"].rsplit("-", 1)[1] for u in users) == sorted(code for code, _, _ in pending)
    assert db.session.scalar(db.select(db.func.count(Ticket.id))) == 100


class ProcessDied(BaseException):
    """Stands for the process being killed: nothing in the app catches it."""


def test_crash_after_the_router_took_the_user_before_the_commit(shop, live_server, provider_sandbox, router_server,
                                                                 monkeypatch):
    provider_sandbox.set_knobs(lose_notifications=True)
    Buyer(live_server, shop).buy("fedapay")
    order = latest_order()
    provider_sandbox.approve("fedapay", order.provider_ref)
    real_add = RouterClient.add_user

    def add_then_die(self, **kwargs):
        real_add(self, **kwargs)
        raise ProcessDied()

    monkeypatch.setattr(RouterClient, "add_user", add_then_die)
    with pytest.raises(ProcessDied):
        payment_checks.check_payment(order, "buyer returned")
    monkeypatch.undo()
    # After the restart: a new session, the dead process's claim lapses, the worker sweeps.
    db.session.rollback()
    db.session.expire_all()
    order = latest_order()
    assert order.status == OrderStatus.PAID and order.ticket.status == "pending"
    assert len(users_for(router_server, order)) == 1
    order.claimed_until = utcnow()
    db.session.commit()
    worker.sweep()
    order = latest_order()
    assert order.status == OrderStatus.PROVISIONED
    [user] = users_for(router_server, order)
    assert user["name"] == order.ticket.username
