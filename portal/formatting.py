"""How money and limits read on pages: `1 000 FCFA`, `1 h · 500 Mo`."""

from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers
from babel.core import get_global
from babel.dates import format_time
from flask import Flask
from flask_babel import get_locale, get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.models import EventKind, OrderStatus
from portal.payments import PROVIDERS, find_network
from portal.routeros import units

CURRENCY_LABELS = {"XOF": "FCFA", "XAF": "FCFA"}


def price(amount: int, currency: str) -> str:
    """Whole units grouped by thin spaces, as prices are written in West Africa; never wrapped."""
    return f"{amount:,}".replace(",", "\u202f") + "\u00a0" + CURRENCY_LABELS.get(currency, currency)


def limits(plan) -> str:
    """The plan's limits in words: connection time, validity (Mikhmon's expiry), data; or none."""
    # Proposed plans (the guide's buy links) have no validity.
    return terms(plan.time_limit, getattr(plan, "validity", ""), plan.data_limit_bytes)


def ticket_terms(order) -> str:
    """What an order's ticket gives: its own time and data limits, and its plan's validity (the
    Mikhmon profile's, which expires the ticket)."""
    return terms(order.time_limit, order.plan.validity if order.plan else "", order.data_limit_bytes)


def terms(time_limit: str, validity: str, data_limit_bytes: int) -> str:
    lang = str(get_locale() or "fr")
    parts = []
    if time_limit:
        parts.append(units.describe_duration(units.parse_duration(time_limit), lang=lang))
    if validity and validity != time_limit:
        try:
            validity = units.describe_duration(units.parse_duration(validity), lang=lang)
        except ValueError:  # Mikhmon keeps what the owner typed; show it as it is
            pass
        parts.append(_("valable %(duration)s", duration=validity))
    if data_limit_bytes:
        parts.append(units.describe_bytes(data_limit_bytes, lang=lang))
    return " · ".join(parts) or _("sans limite")


def provider(name: str):
    """A provider's adapter class, whose attributes are its facts (title, needs_phone...)."""
    return PROVIDERS[name]


def provider_title(name: str) -> str:
    return PROVIDERS[name].title if name in PROVIDERS else name


def country_name(code: str) -> str:
    """A country by its ISO code (`bj`), named in the page's language."""
    return get_locale().territories.get(code.upper(), code.upper())


def phone_example(country: str) -> str:
    """A mobile number of the country as people write it there: `bj` -> `01 95 12 34 56`."""
    example = phonenumbers.example_number_for_type(country.upper(), phonenumbers.PhoneNumberType.MOBILE)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL) if example else ""


def local_time(when: datetime, country: str) -> str:
    """A time of day as clocks read in the country (the hotspot's, which may not be the server's)."""
    zones = get_global("territory_zones").get(country.upper())
    zone = ZoneInfo(zones[0]) if zones else get_timezone()
    return format_time(when, "short", tzinfo=zone, locale=get_locale())


def phone_number(value: str) -> str:
    """A payer's number as people read it, never wrapped: `2290197000000` -> `+229 01 97 00 00 00`
    (as stored when it is no number)."""
    digits = "".join(ch for ch in value if ch.isdigit())
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL).replace(" ", "\u00a0")


def network_title(code: str) -> str:
    """A network as buyers know it: `celtiis_bj` -> `Celtiis Cash (Bénin)`, the country in the page's language."""
    network = find_network(code)
    if network is None:
        return code
    return f"{network.wallet} ({country_name(network.country)})"


ORDER_STATUSES = {
    OrderStatus.CREATED: _l("créée"), OrderStatus.PENDING: _l("en attente de paiement"),
    OrderStatus.PAID: _l("payée, ticket en cours"), OrderStatus.PROVISIONED: _l("ticket livré"),
    OrderStatus.FAILED: _l("échouée"), OrderStatus.EXPIRED: _l("expirée"),
}


def order_status(status: OrderStatus) -> str:
    """An order's state in the owner's words."""
    return str(ORDER_STATUSES[status])


EVENT_KINDS = {
    EventKind.CREATED: _l("commande créée"), EventKind.CHECKOUT_STARTED: _l("paiement commencé"),
    EventKind.CHECKOUT_FAILED: _l("paiement non démarré"), EventKind.NOTIFIED: _l("notification du fournisseur"),
    EventKind.STATUS_CHECK_FAILED: _l("vérification impossible"), EventKind.PAID: _l("paiement confirmé"),
    EventKind.AMOUNT_MISMATCH: _l("montant différent"), EventKind.FAILED: _l("paiement refusé ou annulé"),
    EventKind.EXPIRED: _l("expirée"), EventKind.ROUTER_ERROR: _l("routeur injoignable"),
    EventKind.CLIENT_LOGGED_IN: _l("client connecté"), EventKind.PROVISIONED: _l("ticket créé"),
    EventKind.RETRY_ASKED: _l("nouvel essai demandé"), EventKind.OWNER_ALERTED: _l("propriétaire alerté"),
    EventKind.SALE_EMAIL_SENT: _l("e-mail de vente envoyé"), EventKind.SALE_EMAIL_NOT_SENT: _l("e-mail de vente non envoyé"),
}


def event_kind(kind: EventKind) -> str:
    """A timeline line's kind in the owner's words (the detail stays as recorded)."""
    return str(EVENT_KINDS[kind])


def sale_channel(provider: str) -> str:
    """How a sale was paid: a provider's name, or cash for tickets sold by hand."""
    return _("Espèces") if provider == "cash" else provider_title(provider)


def register(app: Flask) -> None:
    app.add_template_filter(price)
    app.add_template_filter(limits)
    app.add_template_filter(ticket_terms)
    app.add_template_filter(provider)
    app.add_template_filter(provider_title)
    app.add_template_filter(network_title)
    app.add_template_filter(country_name)
    app.add_template_filter(phone_example)
    app.add_template_filter(phone_number)
    app.add_template_filter(local_time)
    app.add_template_filter(order_status)
    app.add_template_filter(sale_channel)
    app.add_template_filter(event_kind)
    app.add_template_global(lambda: str(get_locale() or "fr"), "current_locale")
