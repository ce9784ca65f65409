"""Buying: from the buyer's tap on a plan to the provider's checkout (or the push to their phone).

The amount and terms are the plan's, copied onto the order; the buy form only names a plan and a
payment account, both checked against what the router offers. What the buyer typed (the phone
number, the network, a payment code) is checked before the provider hears of it, and every
refusal names the field at fault.
"""

import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.formatting import network_title
from portal.models import EventKind, FailureReason, Order, OrderStatus, PaymentAccount, Plan, Router
from portal.payments import PROVIDERS, phones
from portal.payments.base import (
    KeysRefused,
    Network,
    OrderData,
    PaymentError,
    PaymentProvider,
    ProviderUnavailable,
)
from portal.services.accounts import provider_for
from portal.services.order_state import record, transition

log = logging.getLogger(__name__)

OTP = re.compile(r"[0-9]{4,8}")  # Orange's payment codes are short digit strings


CHECKOUT_POLL_SECONDS = 0.2  # how often a double tap looks for the first request's checkout


class PurchaseError(Exception):
    """The purchase cannot go on; the message is for the buyer, in their language.

    `field` names the buy form's field at fault ("phone", "network", "otp", "plan_id",
    "account_id"), or is None when the fault is no field's.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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


def offered_networks(accounts: list[PaymentAccount]) -> list[str]:
    """The networks buyers may pick, in the owner's order: those the accounts enabled that their
    adapter still charges."""
    return list(dict.fromkeys(n for a in accounts for n in a.settings.get("networks", [])
                              if n in PROVIDERS[a.provider].networks))


def start_purchase(router: Router, *, plan_id: int | None, account_id: int | None, intent: str,
                   phone: str, network: str, context: HotspotContext, otp: str = "") -> Order:
    """Create the order for a plan and start the provider's checkout. Idempotent per `intent`.

    A checkout whose answer was lost leaves the order "unknown" when the buyer may be charged
    anyway (a push to the phone); other failures to start raise PurchaseError.
    """
    existing = db.session.scalar(select(Order).where(Order.intent == intent))
    if existing is not None:
        return existing
    plan = db.session.scalar(select(Plan).where(Plan.id == plan_id, Plan.router_id == router.id, Plan.active))
    account = next((a for a in router.offered_accounts if a.id == account_id), None)
    if plan is None or account is None:
        raise PurchaseError(_("Ce forfait ou ce moyen de paiement n'est plus proposé. Choisissez à nouveau."),
                            field="plan_id" if plan is None else "account_id")
    adapter = PROVIDERS[account.provider]
    chosen = adapter.networks.get(network) if network in offered_networks([account]) else None
    if adapter.networks and chosen is None:
        raise PurchaseError(_("Choisissez votre réseau Mobile Money."), field="network")
    payer_phone = _payer_phone(phone, chosen, required=adapter.needs_phone)
    if chosen is not None and chosen.currency != plan.currency:
        raise PurchaseError(_("%(network)s paie en %(paid)s et ce forfait est en %(price)s : choisissez un autre "
                              "réseau.", network=network_title(chosen.code), paid=chosen.currency,
                              price=plan.currency), field="network")
    otp = otp.strip()
    if otp and not OTP.fullmatch(otp):
        raise PurchaseError(_("Le code de paiement est fait de 4 à 8 chiffres."), field="otp")
    if chosen is not None and chosen.otp and not otp:
        raise _code_needed(chosen, plan.price)
    order = Order(
        intent=intent, owner_id=router.owner_id, router=router, plan_id=plan.id, account=account,
        provider=account.provider, plan_label=plan.label, profile=plan.profile, time_limit=plan.time_limit,
        data_limit_bytes=plan.data_limit_bytes, amount=plan.price, currency=plan.currency,
        payer_phone=payer_phone, network=chosen.code if chosen else "",
        client_mac=context.mac, client_ip=context.ip, link_orig=context.dst, hotspot_server=context.server,
    )
    db.session.add(order)
    try:
        db.session.flush()
    except IntegrityError:  # the same form submitted twice at once
        db.session.rollback()
        return db.session.scalar(select(Order).where(Order.intent == intent))
    record(order, EventKind.CREATED)
    db.session.commit()
    _start_checkout(order, provider_for(account), chosen, otp)
    return order


def _payer_phone(typed: str, network: Network | None, *, required: bool) -> str:
    """The number in E.164, checked: a mobile number, of the network's country when there is a network."""
    if not typed.strip():
        if required:
            raise PurchaseError(_("Indiquez le numéro Mobile Money qui va payer."), field="phone")
        return ""
    country = network.country if network else current_app.config["PHONE_COUNTRY"]
    example = phones.example(country)
    try:
        number = phones.normalise(typed[:40], country)
    except phones.InvalidPhone:
        raise PurchaseError(_("Ce numéro n'est pas un numéro de mobile valide. Exemple : %(example)s.",
                              example=example), field="phone") from None
    if network is not None and phones.country_of(number) != network.country:
        raise PurchaseError(_("%(network)s demande un numéro de ce pays, par exemple %(example)s.",
                              network=network_title(network.code), example=example), field="phone")
    return number


def _code_needed(network: Network, amount: int) -> PurchaseError:
    """Ask the buyer for the payment code the network wants, and say how to get it."""
    how = _(network.otp_hint, amount=amount) if network.otp_hint else _(
        "Votre opérateur vous le donne (par SMS ou dans son menu) ; saisissez-le ici.")
    return PurchaseError(_("%(network)s demande un code de paiement.", network=network_title(network.code))
                         + " " + how, field="otp")


def _start_checkout(order: Order, adapter: PaymentProvider, network: Network | None, otp: str) -> None:
    public_url = current_app.config["PUBLIC_URL"].rstrip("/")
    data = OrderData(
        code=order.code, amount=order.amount, currency=order.currency,
        description=f"Ticket WiFi {order.plan_label}",
        return_url=public_url + url_for("shop.order_page", code=order.code),
        notify_url=public_url + url_for("webhooks.receive", provider=order.provider,
                                        token=order.account.webhook_token),
        phone=order.payer_phone or None, network=order.network or None, otp=otp or None,
    )
    try:
        session = adapter.create_checkout(data)
    except ProviderUnavailable as exc:
        if exc.sent and adapter.unanswered_checkout_may_charge:
            _unanswered(order, str(exc))
            return
        _fail(order, str(exc), "unavailable")
        raise PurchaseError(_("Le service de paiement ne répond pas. Rien n'a été débité : réessayez "
                              "dans un instant.")) from None
    except PaymentError as exc:
        _fail(order, str(exc), "refused")
        raise _refused(exc, adapter, network, otp, order.amount) from None
    try:
        transition(order, OrderStatus.PENDING, (OrderStatus.CREATED,), provider_ref=session.provider_ref,
                   checkout_url=session.redirect_url or "")
    except IntegrityError:  # a reference this account already has: a provider's test account was reset
        db.session.rollback()
        _fail(order, f"{order.provider} gave reference {session.provider_ref}, already used by another order",
              "duplicate")
        raise PurchaseError(_("Le paiement n'a pas pu démarrer. Rien n'a été débité : réessayez dans un "
                              "instant.")) from None
    detail = session.provider_ref
    if session.redirect_url:  # which hosts payment pages use is checked on real payments (the walled garden)
        host = urlsplit(session.redirect_url).hostname
        log.info("%s payment page on %s", order.provider, host)
        detail += f"; payment page on {host}"
    record(order, EventKind.CHECKOUT_STARTED, detail)
    db.session.commit()


def _refused(exc: PaymentError, adapter: PaymentProvider, network: Network | None, otp: str,
             amount: int) -> PurchaseError:
    """The provider's refusal in the buyer's words, next to the field it is about."""
    named = network_title(network.code) if network else adapter.title
    if isinstance(exc, KeysRefused):  # the owner's keys: the buyer can only pay another way, or later
        return PurchaseError(_("Ce moyen de paiement n'est pas disponible pour le moment. Rien n'a été débité : "
                               "choisissez-en un autre ou réessayez plus tard."), field="account_id")
    if exc.code == "phone":
        country = network.country if network else current_app.config["PHONE_COUNTRY"]
        return PurchaseError(_("%(network)s refuse ce numéro. Vérifiez-le (exemple : %(example)s) ou choisissez "
                               "le réseau de ce numéro.", network=named, example=phones.example(country)),
                             field="phone")
    if exc.code == "otp" and network is not None:
        if otp:
            return PurchaseError(_("Ce code de paiement n'a pas été accepté : demandez-en un nouveau et "
                                   "saisissez-le ici."), field="otp")
        return _code_needed(network, amount)
    if exc.code == "network":
        return PurchaseError(_("%(network)s n'est pas disponible pour le moment : choisissez un autre réseau ou "
                               "réessayez plus tard.", network=named), field="network")
    return PurchaseError(_("Le paiement n'a pas pu démarrer : %(reason)s", reason=exc.provider_message or exc.message))


def _unanswered(order: Order, reason: str) -> None:
    """The request left but its answer did not come back: the buyer may be asked to pay all the same."""
    transition(order, OrderStatus.UNKNOWN, (OrderStatus.CREATED,), last_error=reason[:300])
    record(order, EventKind.CHECKOUT_UNANSWERED, reason)
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
        record(order, EventKind.FAILED, cause="buyer")
    db.session.commit()
    return cancelled


def _fail(order: Order, reason: str, cause: str) -> None:
    """The checkout could not start; `cause` says why in a word: unavailable, refused, duplicate."""
    transition(order, OrderStatus.FAILED, (OrderStatus.CREATED,), last_error=reason[:300])
    record(order, EventKind.CHECKOUT_FAILED, reason, cause=cause)
    db.session.commit()
