"""Buying: from the buyer's tap on a plan to the provider's checkout (or the push to their phone).

The amount and terms are the plan's, copied onto the order; the buy form only names a plan and a
payment account, both checked against what the router offers.
"""

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import EventKind, FailureReason, Order, OrderStatus, Plan, Router
from portal.payments import PROVIDERS
from portal.payments.base import OrderData, PaymentError, PaymentProvider, ProviderUnavailable
from portal.services.accounts import provider_for
from portal.services.order_state import record, transition


CHECKOUT_POLL_SECONDS = 0.2  # how often a double tap looks for the first request's checkout


class PurchaseError(Exception):
    """The purchase cannot go on; the message is for the buyer, in their language."""


@dataclass(frozen=True)
class HotspotContext:
    """What the router's login page told us about the client."""

    mac: str = ""
    ip: str = ""
    dst: str = ""
    server: str = ""


def safe_destination(url: str) -> str:
    """The page the client first asked for, if it is a plain web address; otherwise nothing."""
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc and len(url) <= 500:
        return url.strip()
    return ""


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
    record(order, EventKind.CREATED, f"{plan.label}, {plan.price} {plan.currency}, {account.provider}")
    db.session.commit()
    _start_checkout(order, provider_for(account))
    return order


def _start_checkout(order: Order, adapter: PaymentProvider) -> None:
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
        session = adapter.create_checkout(data)
    except PaymentError as exc:
        _fail(order, str(exc))
        if isinstance(exc, ProviderUnavailable):
            raise PurchaseError(_("Le service de paiement ne répond pas. Rien n'a été débité : réessayez "
                                  "dans un instant.")) from None
        raise PurchaseError(_("Le paiement n'a pas pu démarrer : %(reason)s",
                              reason=exc.provider_message or exc.message)) from None
    try:
        transition(order, OrderStatus.PENDING, (OrderStatus.CREATED,), provider_ref=session.provider_ref,
                   checkout_url=session.redirect_url or "")
    except IntegrityError:  # a reference this account already has: a provider's test account was reset
        db.session.rollback()
        _fail(order, f"{order.provider} gave reference {session.provider_ref}, already used by another order")
        raise PurchaseError(_("Le paiement n'a pas pu démarrer. Rien n'a été débité : réessayez dans un "
                              "instant.")) from None
    record(order, EventKind.CHECKOUT_STARTED, session.provider_ref)
    db.session.commit()


def wait_for_checkout(order: Order, seconds: float) -> Order:
    """The order once its checkout has started or failed, waiting `seconds` at most.

    A second submit of the same form (a double tap) finds the order while the first request is
    still asking the provider: waiting for the first one's link sends this buyer to the payment
    page too, rather than to an order page with nothing to pay yet. Holds no transaction while it
    sleeps.
    """
    deadline = time.monotonic() + seconds
    while order.status == OrderStatus.CREATED and time.monotonic() < deadline:
        db.session.commit()
        time.sleep(CHECKOUT_POLL_SECONDS)
        db.session.refresh(order)
    return order


def cancel(order: Order) -> bool:
    """The buyer gives up a payment still waiting for them; False when it no longer waits.

    Nothing can take back a request already on the buyer's phone: if it is approved anyway, the
    payment revives the order and makes its ticket, as any late payment does.
    """
    cancelled = transition(order, OrderStatus.FAILED, (OrderStatus.PENDING,),
                           failure_reason=FailureReason.CANCELLED_BY_BUYER)
    if cancelled:
        record(order, EventKind.FAILED, "cancelled by the buyer")
    db.session.commit()
    return cancelled


def _fail(order: Order, reason: str) -> None:
    transition(order, OrderStatus.FAILED, (OrderStatus.CREATED,), last_error=reason[:300])
    record(order, EventKind.CHECKOUT_FAILED, reason)
    db.session.commit()
