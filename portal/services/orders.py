"""Orders, from the buyer's tap to a ticket on the router, whatever order the news arrives in.

Webhooks, the buyer's return and the order page's polling are all hints: each one only makes
Kiosque ask the provider where the payment stands. A payment counts when the provider's status
API says paid with the order's exact amount and currency. Every transition is a conditional
UPDATE, so duplicates and races apply it once; a late "paid" revives a failed or expired order.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from flask import current_app, url_for
from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from portal import deferred
from portal.extensions import db
from portal.models import Order, OrderEvent, OrderStatus, PaymentAccount, Plan, Router, Ticket, WebhookEvent, utcnow
from portal.payments import PROVIDERS
from portal.payments.base import (
    InvalidNotification,
    OrderData,
    PaymentCheck,
    PaymentError,
    PaymentStatus,
    ProviderRejected,
    ProviderUnavailable,
)
from portal.routeros.client import RouterError
from portal.services import notifications, provisioning
from portal.services.accounts import provider_for

log = logging.getLogger(__name__)

RETRY_BACKOFF = (5, 15, 30, 60, 120, 300)  # seconds before each new provisioning attempt
# Statuses from which a confirmed payment moves an order to "paid": money received always
# becomes a ticket, even after the order was given up as failed or expired.
PAYABLE = (OrderStatus.CREATED, OrderStatus.PENDING, OrderStatus.FAILED, OrderStatus.EXPIRED)
# The headers worth keeping with any stored webhook; adapters add their signature's.
KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for")


class PurchaseError(Exception):
    """The purchase cannot go on; the message is for the buyer, in their language."""


@dataclass(frozen=True)
class HotspotContext:
    """What the router's login page told us about the client."""

    mac: str = ""
    ip: str = ""
    dst: str = ""
    server: str = ""


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive timestamps; every timestamp Kiosque stores is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def record(order: Order, kind: str, detail: str = "") -> None:
    """Add a line to the order's timeline (committed with the caller's transaction)."""
    db.session.add(OrderEvent(order=order, kind=kind, detail=detail[:500]))
    # The id, not the code: the code opens the order page and its ticket.
    log.info("order %s: %s %s", order.id, kind, detail, extra={"order_id": order.id, "event": kind})


def _transition(order: Order, to: OrderStatus, from_: tuple[OrderStatus, ...], **values) -> bool:
    """Move the order only if it is still in one of `from_`; True when this call moved it."""
    moved = db.session.execute(
        update(Order).where(Order.id == order.id, Order.status.in_(from_)).values(status=to, **values)
        .execution_options(synchronize_session=False)  # the caller's order is refreshed below
    ).rowcount
    db.session.refresh(order)
    return moved == 1


def find_order(code: str) -> Order | None:
    return db.session.scalar(select(Order).where(Order.code == code.strip().upper()))


# -- buying ---------------------------------------------------------------------------------------


def start_purchase(router: Router, *, plan_id: int | None, account_id: int | None, intent: str,
                   phone: str, network: str, context: HotspotContext) -> Order:
    """Create the order for a plan and start the provider's checkout. Idempotent per `intent`."""
    existing = db.session.scalar(select(Order).where(Order.intent == intent))
    if existing is not None:
        return existing
    plan = db.session.scalar(select(Plan).where(Plan.id == plan_id, Plan.router_id == router.id, Plan.active))
    account = next((a for a in router.offered_accounts if a.id == account_id), None)
    if plan is None or account is None:
        raise PurchaseError(_("Ce forfait ou ce moyen de paiement n'est plus proposé. Choisissez à nouveau."))
    phone = "".join(ch for ch in phone if ch.isdigit() or ch == "+")[:20]
    adapter = PROVIDERS[account.provider]
    if adapter.needs_phone and not phone:
        raise PurchaseError(_("Indiquez le numéro Mobile Money qui va payer."))
    if adapter.networks and network not in account.settings.get("networks", []):
        raise PurchaseError(_("Choisissez votre réseau Mobile Money."))
    order = Order(
        intent=intent, owner_id=router.owner_id, router=router, plan_id=plan.id, account=account,
        provider=account.provider, plan_label=plan.label, profile=plan.profile, time_limit=plan.time_limit,
        data_limit_bytes=plan.data_limit_bytes, amount=plan.price, currency=plan.currency,
        payer_phone=phone, network=network if adapter.networks else "",
        client_mac=context.mac, client_ip=context.ip, link_orig=context.dst, hotspot_server=context.server,
    )
    db.session.add(order)
    try:
        db.session.flush()
    except IntegrityError:  # the same form submitted twice at once
        db.session.rollback()
        return db.session.scalar(select(Order).where(Order.intent == intent))
    record(order, "created", f"{plan.label}, {plan.price} {plan.currency}, {account.provider}")
    db.session.commit()
    _start_checkout(order)
    return order


def _start_checkout(order: Order) -> None:
    public_url = current_app.config["PUBLIC_URL"].rstrip("/")
    data = OrderData(
        code=order.code, amount=order.amount, currency=order.currency,
        description=f"Ticket WiFi {order.plan_label}",
        return_url=public_url + url_for("shop.order_page", code=order.code),
        notify_url=public_url + url_for("webhooks.receive", provider=order.provider,
                                        token=order.account.webhook_token),
        phone=order.payer_phone or None, network=order.network or None,
    )
    try:
        session = provider_for(order.account).create_checkout(data)
    except PaymentError as exc:
        _transition(order, OrderStatus.FAILED, (OrderStatus.CREATED,), last_error=str(exc)[:300])
        record(order, "checkout failed", str(exc))
        db.session.commit()
        if isinstance(exc, ProviderUnavailable):
            raise PurchaseError(_("Le service de paiement ne répond pas. Rien n'a été débité : réessayez "
                                  "dans un instant.")) from None
        raise PurchaseError(_("Le paiement n'a pas pu démarrer : %(reason)s",
                              reason=exc.provider_message or exc.message)) from None
    _transition(order, OrderStatus.PENDING, (OrderStatus.CREATED,), provider_ref=session.provider_ref,
                checkout_url=session.redirect_url or "")
    record(order, "checkout started", session.provider_ref)
    db.session.commit()


# -- learning where a payment stands ----------------------------------------------------------------


def refresh(order: Order, reason: str) -> None:
    """Ask the provider about the order and apply the answer."""
    if order.provider_ref is None or order.status == OrderStatus.PROVISIONED:
        return
    order.last_checked_at = utcnow()
    try:
        check = provider_for(order.account).fetch_status(order.provider_ref, order.code)
    except PaymentError as exc:
        order.last_error = str(exc)[:300]
        record(order, "status check failed", f"{reason}: {exc}")
        db.session.commit()
        raise
    apply_check(order, check, reason)


def apply_check(order: Order, check: PaymentCheck, reason: str) -> None:
    """Apply the provider's authoritative answer, once, and make the ticket when it is paid."""
    if check.status == PaymentStatus.PAID:
        if check.amount != order.amount or (check.currency and check.currency != order.currency):
            mismatch = f"paid {check.amount} {check.currency}, expected {order.amount} {order.currency}"
            if order.last_error != mismatch:  # once in the timeline, however often it is polled
                order.last_error = mismatch
                record(order, "amount mismatch", mismatch)
            db.session.commit()
            return
        # Marking it paid also claims its provisioning, which follows at once.
        moved = _transition(order, OrderStatus.PAID, PAYABLE, paid_at=utcnow(),
                            payer_reference=check.payer_reference or order.payer_reference,
                            payer_phone=order.payer_phone or (check.payer_phone or "")[:20], **_claim_values())
        if moved:
            record(order, "paid", f"{reason}; reference {check.payer_reference or check.provider_ref}")
            provision_order(order, claimed=True)
        else:
            db.session.commit()
            if order.status == OrderStatus.PAID:
                provision_order(order)
    elif check.status in (PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED):
        to = OrderStatus.EXPIRED if check.status == PaymentStatus.EXPIRED else OrderStatus.FAILED
        if _transition(order, to, (OrderStatus.CREATED, OrderStatus.PENDING)):
            record(order, to.value, f"{reason}: {check.status}")
        db.session.commit()
    else:
        db.session.commit()  # keeps last_checked_at


def expire(order: Order) -> bool:
    """Give up waiting for the payment; True when this call expired the order."""
    moved = _transition(order, OrderStatus.EXPIRED, (OrderStatus.CREATED, OrderStatus.PENDING))
    if moved:
        record(order, "expired", "no payment in time")
    db.session.commit()
    return moved


def poll(order: Order, *, returned: bool = False) -> None:
    """The order page's poll: ask the provider when no news came lately, retry a stuck ticket.

    `returned` is the buyer coming back from the provider's page: a hint worth checking at once.
    """
    now = utcnow()
    if order.status == OrderStatus.PENDING:
        last_news = max(filter(None, (as_utc(order.created_at), as_utc(order.notified_at),
                                      as_utc(order.last_checked_at))))
        if returned or now - last_news >= timedelta(seconds=current_app.config["ORDER_POLL_AFTER"]):
            try:
                refresh(order, "buyer returned" if returned else "order page")
            except PaymentError:
                pass  # recorded; the next poll tries again
    elif order.status == OrderStatus.PAID and (order.next_attempt_at is None or as_utc(order.next_attempt_at) <= now):
        provision_order(order)


# -- making the ticket ------------------------------------------------------------------------------


def _claim_values() -> dict:
    """What claiming a paid order's provisioning writes: others leave it alone until then."""
    until = utcnow() + timedelta(seconds=current_app.config["ORDER_CLAIM_SECONDS"])
    return {"claimed_until": until, "attempts": Order.attempts + 1}


def provision_order(order: Order, *, claimed: bool = False) -> None:
    """Make the paid order's ticket on the router, log the client in, tell the owner. Exactly once.

    `claimed`: the caller already claimed it (in the same update that marked it paid).
    """
    if not claimed:
        now = utcnow()
        claimed = db.session.execute(
            update(Order)
            .where(Order.id == order.id, Order.status == OrderStatus.PAID,
                   or_(Order.claimed_until.is_(None), Order.claimed_until < now))
            .values(**_claim_values())
            .execution_options(synchronize_session=False)  # refreshed below
        ).rowcount == 1
        if not claimed:
            db.session.rollback()
            return  # someone else is on it, or it is done
        db.session.refresh(order)
    # The claim commits with the ticket's new credentials (or alone when a retry reuses them).
    ticket = order.ticket or provisioning.new_ticket(
        order.router, provisioning.Sale.of_order(order), tag=order.code, order=order,
        client_ip=order.client_ip, client_mac=order.client_mac,
    )
    db.session.commit()
    try:
        provisioning.provision(ticket)
    except RouterError as exc:
        delay = RETRY_BACKOFF[min(order.attempts, len(RETRY_BACKOFF)) - 1]
        order.next_attempt_at = utcnow() + timedelta(seconds=delay)
        order.claimed_until = None
        order.last_error = str(exc)[:300]
        record(order, "router error", f"attempt {order.attempts}: {exc}")
        db.session.commit()
        return
    # Log the client in before showing the ticket, so the page can say they are online.
    if provisioning.log_client_in(ticket):
        record(order, "client logged in", order.client_ip)
    _transition(order, OrderStatus.PROVISIONED, (OrderStatus.PAID,), provisioned_at=utcnow(),
                claimed_until=None, last_error="")
    record(order, "provisioned", f"ticket {ticket.id} on router {order.router_id}")
    db.session.commit()
    deferred.after_response(_email_owner, order.id)


def _email_owner(order_id: int) -> None:
    order = db.session.get(Order, order_id)
    if order is not None:
        notifications.send_sale_email(order)


def retry_now(order: Order) -> None:
    """The owner asks for a stuck paid order's ticket now rather than at the next scheduled try."""
    if order.status != OrderStatus.PAID:
        return
    order.next_attempt_at = None
    record(order, "retry asked", "by the owner")
    db.session.commit()
    provision_order(order)


# -- provider callbacks ---------------------------------------------------------------------------


def handle_notification(provider: str, token: str, *, method: str, body: bytes, headers, form) -> int:
    """Store, verify and act on one provider callback; returns the HTTP status to answer."""
    account = db.session.scalar(select(PaymentAccount).where(
        PaymentAccount.webhook_token == token, PaymentAccount.provider == provider))
    if account is None:
        log.warning("%s callback with an unknown token", provider)
        return 404
    event = WebhookEvent(
        provider=provider, account_id=account.id, method=method,
        body=body.decode("utf-8", "replace").replace("\x00", "\ufffd"),  # databases refuse NUL
        headers={k.lower(): v for k, v in headers.items()
                 if k.lower() in KEPT_HEADERS + PROVIDERS[provider].notification_headers},
    )
    db.session.add(event)
    if method != "POST":  # a provider checking that the URL answers, with a bare GET
        event.outcome = "ping"
        db.session.commit()
        return 200
    adapter = provider_for(account)
    try:
        notice = adapter.parse_notification(body, headers, form)
    except InvalidNotification as exc:
        event.signature_valid, event.outcome = False, "invalid"
        db.session.commit()
        log.warning("%s callback refused: %s", provider, exc)
        return 400
    event.signature_valid = adapter.notification_is_signed()
    clauses = [Order.code == notice.order_code] if notice.order_code else []
    if notice.provider_ref:
        clauses.append(Order.provider_ref == notice.provider_ref)
    order = db.session.scalar(select(Order).where(Order.account_id == account.id, or_(*clauses))) if clauses else None
    if order is None:
        event.outcome = "unknown order"
        db.session.commit()
        log.warning("%s callback for an order this account does not have", provider)
        return 200
    event.order_id = order.id
    order.notified_at = utcnow()
    record(order, "notified", f"{provider} says {notice.status_hint or 'something'}")
    event.outcome = "checked"
    db.session.commit()
    try:
        refresh(order, "webhook")
    except ProviderRejected:
        return 200  # the provider does not know it: a retry cannot help
    except PaymentError:
        return 503  # ask again later; the order page and the worker poll too
    return 200


# -- getting a ticket back --------------------------------------------------------------------------


def retrieve(reference: str, phone: str) -> Ticket | None:
    """The ticket of a provisioned order, from a reference the payer has and their phone number.

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


def safe_destination(url: str) -> str:
    """The page the client first asked for, if it is a plain web address; otherwise nothing."""
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc and len(url) <= 500:
        return url.strip()
    return ""
