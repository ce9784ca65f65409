"""Provider callbacks: stored as they arrived, verified, matched to an order, then confirmed.

The URL's token finds the owner's account; the adapter (built once per callback) verifies the
signature over the raw body and reads the order it names. A verified callback is still only a
hint: the payment counts once the provider's status API confirms it (payment_checks). An order
whose checkout answer was lost has no provider reference: the callback naming it by its code
brings one, kept only if the status API confirms it is this order's payment.
"""

import logging

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.models import CheckSource, EventKind, Order, PaymentAccount, WebhookEvent
from portal.payments import PROVIDERS
from portal.payments.base import InvalidNotification, KeysRefused, PaymentError, ProviderRejected
from portal.services.accounts import provider_for
from portal.services.order_state import adopt_reference, drop_reference, record
from portal.services.payment_checks import check_payment
from portal.services.rows import insert_row

log = logging.getLogger(__name__)

# The headers worth keeping with any stored callback; each adapter adds its signature's.
KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for")

# Built once, with bound parameters: the account a callback's URL names, and the orders of that
# account it names by our code or the provider's reference (None matches nothing).
ACCOUNT_BY_TOKEN = select(PaymentAccount).where(
    PaymentAccount.webhook_token == bindparam("token"), PaymentAccount.provider == bindparam("provider"))
NAMED_ORDERS = select(Order).where(
    Order.account_id == bindparam("account_id"),
    or_(Order.code == bindparam("code"), Order.provider_ref == bindparam("provider_ref")),
).options(joinedload(Order.router))


def receive(provider: str, token: str, *, method: str, body: bytes, headers, form) -> int:
    """Store, verify and act on one provider callback; returns the HTTP status to answer."""
    account = db.session.scalar(ACCOUNT_BY_TOKEN, {"token": token, "provider": provider})
    if account is None:
        log.warning("%s callback with an unknown token", provider)
        return 404
    kept = KEPT_HEADERS + PROVIDERS[provider].notification_headers
    event = {
        "provider": provider, "account_id": account.id, "method": method,
        "body": body.decode("utf-8", "replace").replace("\x00", "\ufffd"),  # databases refuse NUL
        "headers": {k.lower(): v for k, v in headers.items() if k.lower() in kept},
    }
    if method != "POST":  # a provider checking that the URL answers, with a bare GET
        _store(event, outcome="ping")
        return 200
    adapter = provider_for(account)
    try:
        notice = adapter.parse_notification(body, headers, form)
    except InvalidNotification as exc:
        _store(event, signature_valid=False, outcome="invalid")
        log.warning("%s callback refused: %s", provider, exc)
        return 400
    event["signature_valid"] = adapter.notification_is_signed()
    named = {"account_id": account.id, "code": notice.order_code or None, "provider_ref": notice.provider_ref or None}
    found = db.session.scalars(NAMED_ORDERS, named).all() if named["code"] or named["provider_ref"] else []
    # The payment's own reference first; the code only finds an order that has none of the account's.
    by_ref = next((o for o in found if notice.provider_ref and o.provider_ref == notice.provider_ref), None)
    order = by_ref or next(iter(found), None)
    if order is None:
        _store(event, outcome="unknown order")
        log.warning("%s callback for an order this account does not have", provider)
        return 200
    adopted = by_ref is None and notice.provider_ref is not None and adopt_reference(order, notice.provider_ref)
    record(order, EventKind.NOTIFIED, f"reference {notice.provider_ref} taken" if adopted else "",
           status=notice.status_hint)
    _store(event, order_id=order.id, outcome="checked")
    try:
        check_payment(order, CheckSource.WEBHOOK, adapter)
    except KeysRefused:
        return 503  # the owner's keys, not the payment: the notification must come back once they are fixed
    except ProviderRejected:
        if adopted and drop_reference(order, notice.provider_ref):  # not this order's payment after all
            db.session.commit()
        return 200  # the provider does not know it: a retry cannot help
    except PaymentError:
        return 503  # ask again later; the order page and the worker poll too
    return 200


def _store(event: dict, **outcome) -> None:
    """Keep the callback as it arrived, with what became of it, and commit."""
    insert_row(WebhookEvent, **event, **outcome)
    db.session.commit()
