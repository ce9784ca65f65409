"""Paid orders becoming tickets, with a sandbox router and no provider: claims, revivals, takeovers."""

from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import EventKind, Order, OrderStatus, Ticket, TicketStatus, utcnow
from portal.payments.base import PaymentCheck, PaymentStatus
from portal.services import order_state, payment_checks, provisioning
from tests.conftest import CLIENT_IP, CLIENT_MAC, ROUTER_PASSWORD
from tests.factories import make_order, make_router


@pytest.fixture
def router(app, router_server):
    router_server.add_host(CLIENT_IP, CLIENT_MAC)
    return make_router(host=router_server.host, port=router_server.port, api_password=ROUTER_PASSWORD)


def paid_order(router, status: OrderStatus = OrderStatus.PAID, **values) -> Order:
    return make_order(router, status=status, client_ip=CLIENT_IP, client_mac=CLIENT_MAC,
                      payer_phone="2290197000000", **values)


def logins(router_server, user: str) -> int:
    """How many times the router was asked to log a client in as `user`."""
    return sum(1 for words in router_server.received
               if words[0] == "/ip/hotspot/active/login" and f"=user={user}" in words)


def test_a_claimed_order_is_left_to_its_claimant_until_the_claim_expires(router, router_server):
    order = paid_order(router, claimed_until=utcnow() + timedelta(seconds=60))
    provisioning.provision_order(order)
    assert order.status == OrderStatus.PAID and router_server.users() == []
    order.claimed_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    provisioning.provision_order(order)
    assert order.status == OrderStatus.PROVISIONED and len(router_server.users()) == 1
    [session] = router_server.active()
    assert session["address"] == CLIENT_IP


def test_late_payment_revives_an_expired_order(router):
    order = paid_order(router, status=OrderStatus.EXPIRED)
    check = PaymentCheck(provider_ref=order.provider_ref, status=PaymentStatus.PAID, amount=order.amount,
                         currency="XOF", payer_reference="MP-1", payer_phone=None)
    payment_checks.apply_check(order, check, "late webhook", utcnow())
    assert order.status == OrderStatus.PROVISIONED and order.payer_reference == "MP-1"
    db.session.expire_all()
    assert [e.kind for e in order.events] == [EventKind.PAID, EventKind.CLIENT_LOGGED_IN, EventKind.PROVISIONED]


def test_a_failure_never_undoes_a_payment(router):
    order = paid_order(router)
    failed = PaymentCheck(order.provider_ref, PaymentStatus.FAILED, None, None, None, None)
    payment_checks.apply_check(order, failed, "stale webhook", utcnow())
    assert order.status in (OrderStatus.PAID, OrderStatus.PROVISIONED)


def test_a_takeover_after_the_router_took_the_user_logs_the_client_in_once(router, router_server):
    """The first holder made the user and recorded it, then vanished before logging the client in."""
    order = paid_order(router)
    first = order_state.claim_provisioning(order)
    ticket = provisioning.new_ticket(router, provisioning.Sale.of_order(order), tag=order.code, order_id=order.id,
                                     client_ip=CLIENT_IP, client_mac=CLIENT_MAC)
    db.session.commit()
    provisioning.provision_ticket(ticket)  # the user is on the router and recorded
    provisioning.log_client_in(ticket)  # ... and the client was logged in, but nothing more was written
    db.session.execute(db.update(Order).values(claimed_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    db.session.expire_all()
    provisioning.provision_order(db.session.get(Order, order.id))
    order = db.session.get(Order, order.id)
    assert order.status == OrderStatus.PROVISIONED and not order_state.renew(first)
    assert len(router_server.users()) == 1 and len(router_server.active()) == 1
    assert logins(router_server, ticket.username) == 1
    assert db.session.scalar(db.select(db.func.count(Ticket.id))) == 1
    assert [e.kind for e in order.events].count(EventKind.PROVISIONED) == 1
    assert db.session.get(Ticket, ticket.id).status == TicketStatus.CREATED
