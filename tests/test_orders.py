"""Order transitions and provisioning claims, without going through the provider."""

from datetime import timedelta

from portal.extensions import db
from portal.models import Order, OrderStatus, utcnow
from portal.payments.base import PaymentCheck, PaymentStatus
from portal.services import orders
from tests.conftest import CLIENT_IP


def paid_order(router) -> Order:
    plan, account = router.plans[0], router.accounts[0]
    order = Order(intent="test-intent", owner_id=router.owner_id, router=router, plan_id=plan.id, account=account,
                  provider=account.provider, plan_label=plan.label, profile=plan.profile, time_limit=plan.time_limit,
                  amount=plan.price, currency="XOF", status=OrderStatus.PAID, provider_ref="ref-1",
                  client_ip=CLIENT_IP, payer_phone="2290197000000")
    db.session.add(order)
    db.session.commit()
    return order


def test_a_claimed_order_is_left_to_its_claimant_until_the_claim_expires(shop, router_server):
    order = paid_order(shop)
    order.claimed_until = utcnow() + timedelta(seconds=60)
    db.session.commit()
    db.session.expire_all()  # timestamps come back from the database as stored
    orders.provision_order(order)
    assert order.status == OrderStatus.PAID and order.ticket is None and router_server.users() == []
    order.claimed_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    db.session.expire_all()
    orders.provision_order(order)
    assert order.status == OrderStatus.PROVISIONED and len(router_server.users()) == 1


def test_late_payment_revives_an_expired_order(shop, router_server):
    order = paid_order(shop)
    order.status = OrderStatus.EXPIRED
    db.session.commit()
    check = PaymentCheck(provider_ref="ref-1", status=PaymentStatus.PAID, amount=order.amount, currency="XOF",
                         payer_reference="MP-1", payer_phone=None)
    orders.apply_check(order, check, "late webhook")
    assert order.status == OrderStatus.PROVISIONED and order.payer_reference == "MP-1"
    assert "paid" in [e.kind for e in order.events]


def test_a_failure_never_undoes_a_payment(shop):
    order = paid_order(shop)
    orders.apply_check(order, PaymentCheck("ref-1", PaymentStatus.FAILED, None, None, None, None), "stale webhook")
    assert order.status in (OrderStatus.PAID, OrderStatus.PROVISIONED)
