"""Where a payment stands: only the provider's status API says, never a notification or a link.

Webhooks, the buyer's return, the order page's polling and the worker are all hints that make
Kiosque ask. A payment counts when the status API says paid with the order's exact amount and
currency; then the same update marks the order paid and claims its provisioning, which follows at
once. A late "paid" revives an order given up as failed or expired: a failed order with a payment
at the provider is still asked about, more slowly, until ORDER_TTL. An unknown order (its checkout
answer was lost) has nothing to ask about until a callback names its payment (webhook_intake).
"""

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, update

from portal.extensions import db
from portal.models import CheckSource, EventKind, FailureReason, Order, OrderStatus, utcnow
from portal.payments.base import PaymentCheck, PaymentError, PaymentProvider, PaymentStatus, ProviderUnavailable
from portal.services import provisioning
from portal.services.accounts import provider_for
from portal.services.order_state import OPEN, awaiting_late_payment, claim_payment, record, transition

# What a provider's "no" does to an order still waiting for its payment, and its timeline line.
FAILURES = {
    PaymentStatus.FAILED: (OrderStatus.FAILED, EventKind.FAILED),
    PaymentStatus.CANCELLED: (OrderStatus.FAILED, EventKind.FAILED),
    PaymentStatus.EXPIRED: (OrderStatus.EXPIRED, EventKind.EXPIRED),
}


def check_payment(order: Order, source: CheckSource, adapter: PaymentProvider | None = None) -> None:
    """Ask the provider about the order and apply the answer; PaymentError (recorded) if it cannot."""
    if order.provider_ref is None or order.status == OrderStatus.PROVISIONED:
        return
    adapter = adapter or provider_for(order.account)
    checked_at = utcnow()
    try:
        check = adapter.fetch_status(order.provider_ref, order.code, order.network or None)
    except PaymentError as exc:
        order.last_checked_at, order.last_error = checked_at, str(exc)[:300]
        cause = "unavailable" if isinstance(exc, ProviderUnavailable) else "refused"
        record(order, EventKind.STATUS_CHECK_FAILED, str(exc), source=source, cause=cause)
        db.session.commit()
        raise
    apply_check(order, check, source, checked_at)


def apply_check(order: Order, check: PaymentCheck, source: CheckSource, checked_at: datetime) -> None:
    """Apply the provider's answer, once, and make the ticket when it is paid."""
    if check.status == PaymentStatus.PAID:
        if check.amount != order.amount or (check.currency and check.currency != order.currency):
            mismatch = f"paid {check.amount} {check.currency}, expected {order.amount} {order.currency}"
            if order.last_error != mismatch:  # once in the timeline, however often it is polled
                order.last_error = mismatch
                record(order, EventKind.AMOUNT_MISMATCH, amount=check.amount, currency=check.currency)
            order.last_checked_at = checked_at
            db.session.commit()
            return
        claim = claim_payment(order, paid_at=checked_at, last_checked_at=checked_at,
                              payer_reference=check.payer_reference or order.payer_reference,
                              payer_phone=order.payer_phone or (check.payer_phone or "")[:20])
        if claim is not None:
            record(order, EventKind.PAID, source=source, reference=check.payer_reference or check.provider_ref)
            provisioning.provision_claimed(claim, first=True)
        elif order.status == OrderStatus.PAID:  # paid already: make sure someone is on the ticket
            db.session.commit()
            provisioning.provision_order(order)
        return
    if check.status == PaymentStatus.PENDING and order.status == OrderStatus.UNKNOWN:
        # Its request did reach the provider after all: the buyer is being asked to pay.
        (to, kind), from_ = (OrderStatus.PENDING, EventKind.CHECKOUT_STARTED), (OrderStatus.UNKNOWN,)
    else:
        (to, kind), from_ = FAILURES.get(check.status, (None, None)), OPEN
    failure = FailureReason.INSUFFICIENT_FUNDS if check.insufficient_funds else None
    if to and transition(order, to, from_, last_checked_at=checked_at, failure_reason=failure):
        record(order, kind, f"reference {check.provider_ref}", source=source, status=check.status)
    else:
        order.last_checked_at = checked_at
    db.session.commit()


def poll(order: Order, *, returned: bool = False) -> None:
    """The order page's poll: ask the provider when no news came lately, retry a stuck ticket.

    `returned` is the buyer coming back from the provider's page: a hint worth checking at once.
    Whatever asks, one order's provider is asked at most once per PROVIDER_CHECK_GAP seconds.
    """
    if order.status == OrderStatus.PAID:
        if order.next_attempt_at is None or order.next_attempt_at <= utcnow():
            provisioning.provision_order(order)
        return
    config = current_app.config
    if order.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN) and order.provider_ref is not None:
        quiet = config["ORDER_POLL_AFTER"]
    elif awaiting_late_payment(order):
        quiet = config["FAILED_ORDER_POLL_AFTER"]
    else:
        return
    last_news = max(filter(None, (order.created_at, order.last_checked_at)))
    if utcnow() - last_news >= timedelta(seconds=0 if returned else quiet) \
            and take_turn(order.id, config["PROVIDER_CHECK_GAP"]):
        try:
            check_payment(order, CheckSource.BUYER_RETURNED if returned else CheckSource.ORDER_PAGE)
        except PaymentError:
            pass  # recorded; the next poll tries again


def take_turn(order_id: int, gap: float) -> bool:
    """Claim the next status check of this order: False when one was made less than `gap` seconds ago.

    Of several requests or workers asking at once, one gets the turn. Commits.
    """
    now = utcnow()
    taken = db.session.execute(
        update(Order).where(Order.id == order_id, or_(Order.last_checked_at.is_(None),
                                                      Order.last_checked_at <= now - timedelta(seconds=gap)))
        .values(last_checked_at=now).execution_options(synchronize_session=False)
    ).rowcount == 1
    db.session.commit()
    return taken
