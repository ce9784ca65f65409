"""Getting a ticket back later, from what the payer has: a payment reference and their phone."""

from flask import current_app
from sqlalchemy import or_, select

from portal.extensions import db
from portal.models import Order, OrderStatus, Ticket
from portal.payments import phones


def retrieve(reference: str, phone: str) -> Ticket | None:
    """The ticket of a provisioned order, from its code or payment reference and the payer's phone.

    One answer (None) for "no such reference" and "wrong phone", so neither can be probed. The
    phone may be typed in any form the buyer knows: with or without its country code, spaces,
    Benin's old eight digits.
    """
    reference = reference.strip()
    if len(reference) < 4 or not phone.strip():
        return None
    orders = db.session.scalars(select(Order).where(
        Order.status == OrderStatus.PROVISIONED,
        or_(Order.code == reference.upper(), Order.payer_reference == reference, Order.provider_ref == reference),
    )).all()
    country = current_app.config["PHONE_COUNTRY"]
    return next((o.ticket for o in orders if phones.same_number(phone[:40], o.payer_phone, country)), None)
