"""The worker catches up on what webhooks and buyers' pages missed."""

from datetime import timedelta

import pytest

from portal.extensions import db, mail
from portal.models import Order, OrderStatus, Router, utcnow
from portal.services import worker
from tests.conftest import Buyer, latest_order, users_for


@pytest.fixture
def app_config(app_config):
    return {**app_config, "ORDER_POLL_AFTER": 3600, "WORKER_POLL_AFTER": 0, "ROUTER_DOWN_ALERT_AFTER": 0,
            "MAIL_PORT": 1}


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
    assert "worker poll" in " ".join(e.detail for e in order.events)


def test_router_down_then_back_provisions_once_with_one_alert_each_way(shop, live_server, provider_sandbox,
                                                                       router_server):
    order = pending_order(live_server, shop)
    router_server.mode = "refuse"
    with mail.record_messages() as outbox:
        provider_sandbox.approve("fedapay", order.provider_ref)
        provider_sandbox.drain()
        for _ in range(3):  # the router stays down over several sweeps
            db.session.execute(db.update(Order).values(next_attempt_at=None))
            db.session.commit()
            worker.sweep()
        assert latest_order().status == OrderStatus.PAID
        router_server.mode = "normal"
        db.session.execute(db.update(Order).values(next_attempt_at=None))
        db.session.commit()
        report = worker.sweep()
        worker.sweep()
    order = latest_order()
    assert report.provisioned == 1 and order.status == OrderStatus.PROVISIONED
    assert len(users_for(router_server, order)) == 1
    kinds = [e.kind for e in order.events]
    assert kinds.count("router error") >= 3 and kinds.count("provisioned") == 1
    alerts = [s for s in subjects(outbox) if "Routeur" in s]
    assert alerts == ["Routeur Maquis injoignable", "Routeur Maquis de nouveau joignable"]
    assert db.session.get(Router, shop.id).down_since is None


def test_provisioning_backs_off_between_attempts(shop, live_server, provider_sandbox, router_server):
    order = pending_order(live_server, shop)
    router_server.mode = "refuse"
    provider_sandbox.approve("fedapay", order.provider_ref)
    provider_sandbox.drain()
    order = latest_order()
    first_wait = order.next_attempt_at - utcnow()
    assert timedelta(seconds=3) < first_wait <= timedelta(seconds=5)
    worker.sweep()  # not due yet: no new attempt
    assert latest_order().attempts == 1


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
    assert latest_order().stuck_alerted_at is not None


def test_worker_command_runs_one_sweep(app, shop, live_server, provider_sandbox, router_server):
    provider_sandbox.set_knobs(lose_notifications=True)
    order = pending_order(live_server, shop)
    provider_sandbox.approve("fedapay", order.provider_ref)
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0 and "provisioned=0 polled=1" in result.output
    assert db.session.scalar(db.select(Order.status)) == OrderStatus.PROVISIONED
