"""An order's states and claims, on the database alone: no router, no provider, no server."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy.exc import StatementError

from portal.extensions import db
from portal.models import EventKind, Order, OrderStatus, utcnow
from portal.services import order_state
from tests.factories import make_order

pytestmark = pytest.mark.usefixtures("app")  # the app on its database; nothing is served


def reread(order: Order) -> Order:
    """The order as another process would see it now."""
    return db.session.get(Order, order.id, populate_existing=True)


def test_a_transition_applies_once():
    order = make_order(status=OrderStatus.PENDING)
    assert order_state.transition(order, OrderStatus.FAILED, order_state.OPEN, last_error="declined")
    assert order.status == OrderStatus.FAILED and order.last_error == "declined"  # the row it wrote
    assert not order_state.transition(order, OrderStatus.FAILED, order_state.OPEN)
    db.session.commit()
    assert reread(order).status == OrderStatus.FAILED


@pytest.mark.parametrize("status", [OrderStatus.CREATED, OrderStatus.PENDING, OrderStatus.FAILED, OrderStatus.EXPIRED])
def test_money_received_claims_the_order_from_any_unpaid_state(status):
    order = make_order(status=status)
    claim = order_state.claim_payment(order, paid_at=utcnow())
    assert claim is not None and order.status == OrderStatus.PAID and order.claim_token == claim.token
    assert order.attempts == 1 and order.claimed_until > utcnow()


@pytest.mark.parametrize("status", [OrderStatus.PAID, OrderStatus.PROVISIONED])
def test_a_second_payment_confirmation_claims_nothing(status):
    order = make_order(status=status)
    assert order_state.claim_payment(order, paid_at=utcnow()) is None
    assert order.status == status and order.attempts == 0


def test_a_held_claim_keeps_others_out_until_it_lapses():
    order = make_order(status=OrderStatus.PAID)
    first = order_state.claim_provisioning(order)
    db.session.commit()
    assert first is not None
    assert order_state.claim_provisioning(reread(order)) is None
    db.session.execute(db.update(Order).values(claimed_until=utcnow() - timedelta(seconds=1)))
    second = order_state.claim_provisioning(reread(order))
    assert second is not None and second.token != first.token and reread(order).attempts == 2


def test_a_lapsed_claim_can_no_longer_act():
    """The fence: once someone else took the order over, every write of the old holder is refused."""
    order = make_order(status=OrderStatus.PAID)
    slow = order_state.claim_provisioning(order)
    db.session.execute(db.update(Order).values(claimed_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    fresh = order_state.claim_provisioning(reread(order))
    db.session.commit()
    assert not order_state.renew(slow)
    assert not order_state.release(slow, last_error="router down")
    assert not order_state.finish(slow, provisioned_at=utcnow())
    assert reread(order).status == OrderStatus.PAID and reread(order).last_error == ""
    assert order_state.renew(fresh) and order_state.finish(fresh, provisioned_at=utcnow())
    db.session.commit()
    provisioned = reread(order)
    assert provisioned.status == OrderStatus.PROVISIONED and provisioned.claim_token is None
    assert not order_state.finish(fresh, provisioned_at=utcnow())  # a finished claim is spent


def test_renewing_pushes_the_deadline_back():
    order = make_order(status=OrderStatus.PAID)
    claim = order_state.claim_provisioning(order)
    before = order.claimed_until
    assert order_state.renew(claim) and order.claimed_until >= before


def test_a_released_claim_leaves_the_order_paid_for_a_later_attempt():
    order = make_order(status=OrderStatus.PAID)
    claim = order_state.claim_provisioning(order)
    later = utcnow() + timedelta(seconds=30)
    assert order_state.release(claim, next_attempt_at=later)
    assert order.status == OrderStatus.PAID and order.claim_token is None and order.next_attempt_at == later
    assert order_state.claim_provisioning(order) is not None


@pytest.mark.parametrize("status,expired", [(OrderStatus.CREATED, True), (OrderStatus.PENDING, True),
                                            (OrderStatus.PAID, False), (OrderStatus.PROVISIONED, False)])
def test_only_orders_waiting_for_payment_expire(status, expired):
    order = make_order(status=status)
    assert order_state.expire(order) is expired
    db.session.commit()
    assert (reread(order).status == OrderStatus.EXPIRED) is expired
    assert ([e.kind for e in order.events] == [EventKind.EXPIRED]) is expired


def test_moments_come_back_in_utc_and_naive_ones_are_refused():
    order = make_order()
    assert reread(order).created_at.utcoffset() == timedelta(0)
    order.paid_at = datetime(2026, 11, 28, 12, 0)  # no time zone: ambiguous
    with pytest.raises(StatementError, match="naive datetime"):
        db.session.commit()
    db.session.rollback()
