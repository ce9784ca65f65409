"""Getting a ticket back later, from what the payer has: a payment reference and their phone."""

from sqlalchemy import or_, select

from portal.extensions import db
from portal.models import Order, OrderStatus, Ticket


def retrieve(reference: str, phone: str) -> Ticket | None:
    """The ticket of a provisioned order, from its code or payment reference and the payer's phone.

    One answer (None) for "no such reference" and "wrong phone", so neither can be probed.
    """
    reference = reference.strip()
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(reference) < 4 or len(digits) < 8:
        return None
    orders = db.session.scalars(select(Order).where(
        Order.status == OrderStatus.PROVISIONED,
        or_(Order.code == reference.upper(), Order.payer_reference == reference, Order.provider_ref == reference),
    )).all()
    for order in orders:
        # Numbers are written with or without the country code: compare the last eight digits.
        known = "".join(ch for ch in order.payer_phone if ch.isdigit())
        if known and known[-8:] == digits[-8:]:
            return order.ticket
    return None
