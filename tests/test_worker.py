"""The worker catches up on what webhooks and buyers' pages missed."""

import json
import threading
import time
from datetime import timedelta

import pytest
import requests

from flask_mail import email_dispatched

from portal.extensions import db, mail
from portal.models import CheckSource, EventKind, Order, OrderStatus, Router, utcnow
from portal.services import worker
from sandbox.routeros import SandboxRouter
from tests.conftest import CREDENTIALS, Buyer, latest_order, users_for, wait_for
from tests.provider_signing import fedapay_signature
from tests.factories import make_order, make_owner, make_router


@pytest.fixture
def app_config(app_config):
    return {**app_config, "ORDER_POLL_AFTER": 3600, "WORKER_POLL_AFTER": 0, "ROUTER_DOWN_ALERT_AFTER": 0,
            "MAIL_PORT": 1, "WORKER_SWEEP_BUDGET": 1}


def pending_order(live_server, shop, provider="fedapay") -> Order:
    Buyer(live_server, shop).buy(provider)
    return latest_order()


def subjects(outbox) -> list[str]:
    return [m.subject for m in outbox]


def test_a_lost_webhook_is_caught_up_by_polling(shop, live_server, provider_sandbox, router_server):
    provider_sandbox.set_knobs(lose_notifications=True)
    order = pending_order(live_server, shop, "cinetpay")
    provider_sandbox.approve("cinetpay", order.provider_ref)
    report = worker.sweep()
    assert report.polled == 1
    order = latest_order()
    assert order.status == OrderStatus.PROVISIONED and len(users_for(router_server, order)) == 1
    paid = next(e for e in order.events if e.kind == EventKind.PAID)
    assert paid.facts["source"] == CheckSource.WORKER


def test_a_callback_s_status_check_holds_the_worker_s_poll_off(app, shop, live_server, provider_sandbox):
    app.config["WORKER_POLL_AFTER"] = 60
    order = pending_order(live_server, shop)
    db.session.execute(db.update(Order).values(created_at=utcnow() - timedelta(seconds=120)))
    db.session.commit()
    account = next(a for a in shop.accounts if a.provider == "fedapay")
    body = json.dumps({"name": "transaction.created", "object": "transaction",
                       "entity": {"id": int(order.provider_ref), "status": "pending"}}).encode()
    answer = requests.post(f"{live_server}/webhooks/fedapay/{account.webhook_token}", data=body, timeout=30, headers={
        "Content-Type": "application/json",
        "X-FEDAPAY-SIGNATURE": fedapay_signature(CREDENTIALS["fedapay"]["webhook_secret"], body, int(time.time()))})
    assert answer.status_code == 200
    asked = provider_sandbox.api_calls["fedapay_get"]
    assert worker.sweep().polled == 0  # the provider was asked about it a moment ago
    db.session.execute(db.update(Order).values(last_checked_at=utcnow() - timedelta(seconds=120)))
    db.session.commit()
    assert worker.sweep().polled == 1 and provider_sandbox.api_calls["fedapay_get"] == asked + 1
    assert latest_order().status == OrderStatus.PENDING


def router_due_again() -> None:
    """Time passes: the router's and the order's waits are over."""
    db.session.execute(db.update(Router).values(retry_at=utcnow()))
    db.session.execute(db.update(Order).values(next_attempt_at=None))
    db.session.commit()


def test_router_down_then_back_provisions_once_with_one_alert_each_way(shop, live_server, provider_sandbox,
                                                                       router_server):
    order = pending_order(live_server, shop)
    router_server.mode = "refuse"
    with mail.record_messages() as outbox:
        provider_sandbox.approve("fedapay", order.provider_ref)
        provider_sandbox.drain()
        for _ in range(3):  # the router is left alone while it waits out its backoff: no attempt
            worker.sweep()
        assert latest_order().status == OrderStatus.PAID and latest_order().attempts == 1
        router_due_again()
        worker.sweep()  # due again and still down: one more attempt, and the backoff grows
        assert latest_order().attempts == 1  # the health check found it down: the ticket waits
        router = db.session.get(Router, shop.id, populate_existing=True)
        assert router.failures == 2 and router.retry_at - utcnow() > timedelta(seconds=20)
        router_server.mode = "normal"
        router_due_again()
        report = worker.sweep()
        worker.sweep()
    order = latest_order()
    assert report.provisioned == 1 and order.status == OrderStatus.PROVISIONED
    assert len(users_for(router_server, order)) == 1
    kinds = [e.kind for e in order.events]
    assert kinds.count("router error") == 1 and kinds.count("provisioned") == 1
    alerts = [s for s in subjects(outbox) if "Routeur" in s]
    assert alerts == ["Routeur Maquis injoignable", "Routeur Maquis de nouveau joignable"]
    router = db.session.get(Router, shop.id, populate_existing=True)
    assert router.down_since is None and router.failures == 0 and router.retry_at is None


def test_provisioning_waits_out_the_routers_backoff(shop, live_server, provider_sandbox, router_server):
    order = pending_order(live_server, shop)
    router_server.mode = "refuse"
    provider_sandbox.approve("fedapay", order.provider_ref)
    provider_sandbox.drain()
    order = latest_order()
    first_wait = order.next_attempt_at - utcnow()
    assert timedelta(seconds=10) < first_wait <= timedelta(seconds=15)  # the router's first backoff
    worker.sweep()  # not due yet: no new attempt
    assert latest_order().attempts == 1


def test_paid_orders_go_at_once_when_their_router_answers_again(shop, live_server, provider_sandbox,
                                                                  router_server):
    order = pending_order(live_server, shop)
    router_server.mode = "refuse"
    provider_sandbox.approve("fedapay", order.provider_ref)
    provider_sandbox.drain()
    db.session.execute(db.update(Order).values(next_attempt_at=utcnow() + timedelta(minutes=5)))
    db.session.execute(db.update(Router).values(retry_at=utcnow()))
    db.session.commit()
    router_server.mode = "normal"
    report = worker.sweep()  # the health check finds it back: the order does not wait its 5 minutes
    assert report.provisioned == 1 and latest_order().status == OrderStatus.PROVISIONED


def test_unpaid_orders_expire_and_a_late_payment_revives_them(shop, live_server, provider_sandbox, router_server):
    order = pending_order(live_server, shop)
    order.created_at = utcnow() - timedelta(hours=3)
    db.session.commit()
    assert worker.sweep().expired == 1
    assert latest_order().status == OrderStatus.EXPIRED
    provider_sandbox.approve("fedapay", order.provider_ref)  # the money arrives late: the webhook comes
    provider_sandbox.drain()
    order = latest_order()
    assert order.status == OrderStatus.PROVISIONED and len(users_for(router_server, order)) == 1
    kinds = [e.kind for e in order.events]
    assert kinds.index("expired") < kinds.index("paid") < kinds.index("provisioned")


def test_owner_is_alerted_once_about_a_paid_order_without_ticket(shop, live_server, provider_sandbox, router_server):
    order = pending_order(live_server, shop)
    router_server.mode = "refuse"
    provider_sandbox.approve("fedapay", order.provider_ref)
    provider_sandbox.drain()
    order = latest_order()
    order.paid_at = utcnow() - timedelta(minutes=11)
    db.session.commit()
    with mail.record_messages() as outbox:
        worker.sweep()
        worker.sweep()
    stuck = [m for m in outbox if m.subject.startswith("Ticket en attente")]
    assert len(stuck) == 1 and order.code in stuck[0].body
    # The router's failure in the connection test's words, never the exception's.
    assert "Kiosque n'a pas pu ouvrir de session API avec ce routeur" in stuck[0].body
    assert "Connection refused" not in stuck[0].body
    down = [m for m in outbox if m.subject == "Routeur Maquis injoignable"]
    assert all("Kiosque n'a pas pu ouvrir de session API" in m.body for m in down)
    assert latest_order().stuck_alerted_at is not None


def test_worker_command_runs_one_sweep(app, shop, live_server, provider_sandbox, router_server):
    provider_sandbox.set_knobs(lose_notifications=True)
    order = pending_order(live_server, shop)
    provider_sandbox.approve("fedapay", order.provider_ref)
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0 and "provisioned=1 polled=1" in result.output
    assert db.session.scalar(db.select(Order.status)) == OrderStatus.PROVISIONED


def test_a_hundred_dead_routers_of_other_owners_do_not_hold_up_a_ticket(app, shop, live_server, provider_sandbox,
                                                                        router_server):
    """One owner's lost webhook is caught up within 5 s while 100 other owners' routers hang."""
    provider_sandbox.set_knobs(lose_notifications=True)
    with SandboxRouter(password="dead") as black_hole:
        black_hole.mode = "hang"  # accepts, then never says a word: each call costs a whole timeout
        others = [make_owner() for _ in range(10)]
        for n in range(100):  # each answered once, sells online, and has a paid order waiting
            router = make_router(others[n % 10], host=black_hole.host, port=black_hole.port, api_password="dead",
                                 last_contact_at=utcnow() - timedelta(minutes=5))
            make_order(router, status=OrderStatus.PAID, paid_at=utcnow())
        stop = threading.Event()

        def work() -> None:
            with app.app_context():
                worker.run(0.2, stop)

        sweeps = threading.Thread(target=work)
        sweeps.start()
        try:
            time.sleep(1)  # the worker is busy with the dead routers when the payment comes
            order = pending_order(live_server, shop)
            provider_sandbox.approve("fedapay", order.provider_ref)
            approved = time.monotonic()
            wait_for(lambda: latest_order().status == OrderStatus.PROVISIONED, timeout=30)
            took = time.monotonic() - approved
        finally:
            stop.set()
            sweeps.join(60)
    assert took < 5, f"provisioned {took:.1f} s after the payment"
    assert len(users_for(router_server, latest_order())) == 1


def test_sale_emails_go_while_other_owners_dead_routers_are_being_tried(app):
    app.config["MAIL_SUPPRESS_SEND"] = True  # recorded as dispatched, the moment each is sent
    with SandboxRouter(password="dead") as black_hole:
        black_hole.mode = "hang"  # each call costs a whole ROUTER_TIMEOUT
        for _ in range(4):
            router = make_router(make_owner(), host=black_hole.host, port=black_hole.port, api_password="dead",
                                 last_contact_at=utcnow() - timedelta(minutes=5))
            make_order(router, status=OrderStatus.PAID, paid_at=utcnow())
        sold = make_order(make_router(make_owner()), status=OrderStatus.PROVISIONED, paid_at=utcnow(),
                          provisioned_at=utcnow())
        dispatched: list[tuple[float, str]] = []

        def note(sender, message) -> None:
            dispatched.append((time.monotonic(), message.body))

        started = time.monotonic()
        with email_dispatched.connected_to(note):
            report = worker.sweep()
        finished = time.monotonic()
    [sale_sent_at] = [at for at, body in dispatched if sold.code in body]
    assert report.emails == 1
    # Sent before any dead router could have cost its timeout, in a sweep that waited on them.
    assert sale_sent_at - started < app.config["ROUTER_TIMEOUT"] <= finished - started


def test_calls_failing_together_count_as_one_failure(app):
    from portal.services import router_health

    router = make_router()
    for _ in range(5):  # five attempts that were under way when the router stopped answering
        router_health.failed(router)
    db.session.commit()
    router = db.session.get(Router, router.id, populate_existing=True)
    assert router.failures == 1 and timedelta(seconds=10) < router.retry_at - utcnow() <= timedelta(seconds=15)


def test_the_owners_retry_goes_at_once_even_while_the_router_is_left_alone(app, shop, live_server,
                                                                           provider_sandbox, router_server):
    from tests.conftest import Browser

    order = pending_order(live_server, shop)
    router_server.mode = "refuse"
    provider_sandbox.approve("fedapay", order.provider_ref)
    provider_sandbox.drain()
    assert db.session.get(Router, shop.id, populate_existing=True).retry_at > utcnow()
    router_server.mode = "normal"  # the owner fixed it, and asks for the ticket now
    owner = Browser(app.test_client())
    owner.login("maquis@example.com", "maquis-password")
    assert owner.post(f"/owner/orders/{order.id}/retry").status_code in (200, 302, 303)
    assert latest_order().status == OrderStatus.PROVISIONED
