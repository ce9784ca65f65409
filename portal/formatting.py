"""How things read on pages: money and limits (`1 000 FCFA`, `1 h · 500 Mo`), states, the
lines of an order's timeline, router failures."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from babel.core import get_global
from babel.dates import format_time
from flask import Flask
from flask_babel import format_timedelta, get_locale, get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.models import CheckSource, EventKind, Order, OrderEvent, OrderStatus
from portal.payments import PROVIDERS, find_network, phones
from portal.payments.base import PaymentStatus
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


def local_time(when: datetime, country: str) -> str:
    """A time of day as clocks read in the country (the hotspot's, which may not be the server's)."""
    zones = get_global("territory_zones").get(country.upper())
    zone = ZoneInfo(zones[0]) if zones else get_timezone()
    return format_time(when, "short", tzinfo=zone, locale=get_locale())


def phone_number(value: str) -> str:
    """A payer's number as people read it, never wrapped: `+2290197000000` -> `+229 01 97 00 00 00`."""
    return phones.readable(value).replace(" ", "\u00a0")


def network_title(code: str) -> str:
    """A network as buyers know it: `celtiis_bj` -> `Celtiis Cash (Bénin)`, the country in the page's language."""
    network = find_network(code)
    if network is None:
        return code
    return f"{network.wallet} ({country_name(network.country)})"


ORDER_STATUSES = {
    OrderStatus.CREATED: _l("créée"), OrderStatus.PENDING: _l("en attente de paiement"),
    OrderStatus.UNKNOWN: _l("demande sans réponse du fournisseur"),
    OrderStatus.PAID: _l("payée, ticket en cours"), OrderStatus.PROVISIONED: _l("ticket livré"),
    OrderStatus.FAILED: _l("échouée"), OrderStatus.EXPIRED: _l("expirée"),
}


def order_status(status: OrderStatus) -> str:
    """An order's state in the owner's words."""
    return str(ORDER_STATUSES[status])


EVENT_KINDS = {
    EventKind.CREATED: _l("commande créée"), EventKind.CHECKOUT_STARTED: _l("paiement commencé"),
    EventKind.CHECKOUT_FAILED: _l("paiement non démarré"),
    EventKind.CHECKOUT_UNANSWERED: _l("demande de paiement sans réponse"),
    EventKind.NOTIFIED: _l("notification du fournisseur"),
    EventKind.STATUS_CHECK_FAILED: _l("vérification impossible"), EventKind.PAID: _l("paiement confirmé"),
    EventKind.AMOUNT_MISMATCH: _l("montant différent"), EventKind.FAILED: _l("paiement refusé ou annulé"),
    EventKind.EXPIRED: _l("expirée"), EventKind.ROUTER_ERROR: _l("routeur injoignable"),
    EventKind.CLIENT_LOGGED_IN: _l("client connecté"), EventKind.PROVISIONED: _l("ticket créé"),
    EventKind.RETRY_ASKED: _l("nouvel essai demandé"), EventKind.OWNER_ALERTED: _l("propriétaire alerté"),
    EventKind.SALE_EMAIL_SENT: _l("e-mail de vente envoyé"), EventKind.SALE_EMAIL_NOT_SENT: _l("e-mail de vente non envoyé"),
}


def event_kind(kind: EventKind) -> str:
    """A timeline line's kind in the owner's words."""
    return str(EVENT_KINDS[kind])


# What went wrong with a router, in the words of the connection test, wherever an owner reads it.
ROUTER_FAILURES = {
    "auth": _l("Le routeur refuse l'utilisateur ou le mot de passe de l'API."),
    "tls": _l("La connexion chiffrée (api-ssl) a échoué : certificat refusé ou non reconnu."),
    # One sentence for a closed port, a silent one, a service that is not RouterOS and an address
    # the egress policy refuses: the connection test must not tell them apart (port scanning).
    "unreachable": _l("Kiosque n'a pas pu ouvrir de session API avec ce routeur : vérifiez l'adresse, le port, "
                      "le pare-feu et que le service API est activé (/ip service)."),
    "lost": _l("La session API s'est coupée ou n'a plus répondu à temps : le routeur est peut-être surchargé."),
    "command": _l("Le routeur a refusé la commande : %(message)s"),
    "names": _l("Plus aucun code libre avec les réglages des tickets de ce routeur : allongez le code ou "
                "prenez plus de caractères."),
    "other": _l("Erreur de communication avec le routeur."),
}


def router_failure(failure: str, router_message: str = "") -> str:
    """A router failure (a key of ROUTER_FAILURES) as a sentence an owner can act on."""
    return str(ROUTER_FAILURES.get(failure, ROUTER_FAILURES["other"])) % {"message": router_message}


PAYMENT_STATUSES = {
    PaymentStatus.PENDING: _l("en attente"), PaymentStatus.PAID: _l("réussi"), PaymentStatus.FAILED: _l("refusé"),
    PaymentStatus.CANCELLED: _l("annulé"), PaymentStatus.EXPIRED: _l("expiré"),
}
CHECK_SOURCES = {
    CheckSource.WEBHOOK: _l("Vérifié auprès du fournisseur après sa notification."),
    CheckSource.ORDER_PAGE: _l("Vérifié auprès du fournisseur pendant que l'acheteur attendait sur sa page."),
    CheckSource.BUYER_RETURNED: _l("Vérifié auprès du fournisseur au retour de l'acheteur."),
    CheckSource.WORKER: _l("Vérifié auprès du fournisseur par le suivi automatique."),
}


def event_line(event: OrderEvent) -> str:
    """A timeline line as a sentence in the reader's language, written from the facts recorded with it.

    A line recorded before lines kept their facts reads as its kind; its detail holds the rest.
    """
    if event.facts is None:
        return event_kind(event.kind)
    order, facts = event.order, event.facts
    provider = provider_title(order.provider)
    source = str(CHECK_SOURCES[facts["source"]]) if facts.get("source") in CHECK_SOURCES else ""
    match event.kind:
        case EventKind.CREATED:
            return _("Commande de %(plan)s à %(amount)s, payée par %(provider)s.", plan=order.plan_label,
                     amount=price(order.amount, order.currency), provider=provider)
        case EventKind.CHECKOUT_STARTED:
            return _("Paiement ouvert chez %(provider)s, référence %(reference)s.", provider=provider,
                     reference=order.provider_ref or "—")
        case EventKind.CHECKOUT_FAILED:
            if facts.get("cause") == "unavailable":
                return _("Le paiement n'a pas pu commencer : %(provider)s ne répond pas.", provider=provider)
            if facts.get("cause") == "duplicate":
                return _("Le paiement n'a pas pu commencer : %(provider)s a donné une référence déjà utilisée "
                         "par une autre commande.", provider=provider)
            return _("Le paiement n'a pas pu commencer : %(provider)s a refusé la demande.", provider=provider)
        case EventKind.CHECKOUT_UNANSWERED:
            return _("%(provider)s n'a pas répondu à la demande de paiement, qui a pu arriver sur le téléphone de "
                     "l'acheteur : Kiosque attend que le paiement se manifeste.", provider=provider)
        case EventKind.NOTIFIED:
            if facts.get("status") in PAYMENT_STATUSES:
                return _("Notification de %(provider)s : paiement %(status)s. Kiosque vérifie.", provider=provider,
                         status=PAYMENT_STATUSES[facts["status"]])
            return _("Notification de %(provider)s. Kiosque vérifie le paiement.", provider=provider)
        case EventKind.STATUS_CHECK_FAILED:
            if facts.get("cause") == "unavailable":
                return _("%(provider)s ne répond pas : Kiosque redemandera où en est le paiement.", provider=provider)
            return _("%(provider)s refuse de dire où en est le paiement : clés refusées ou paiement inconnu.",
                     provider=provider)
        case EventKind.PAID:
            return " ".join(filter(None, (_(
                "Paiement de %(amount)s confirmé par %(provider)s, référence %(reference)s.",
                amount=price(order.amount, order.currency), provider=provider,
                reference=facts.get("reference") or "—"), source)))
        case EventKind.AMOUNT_MISMATCH:
            return _("%(provider)s confirme un paiement de %(paid)s au lieu de %(expected)s : pas de ticket pour ce "
                     "montant.", provider=provider, paid=price(facts["amount"], facts["currency"] or order.currency),
                     expected=price(order.amount, order.currency))
        case EventKind.FAILED:
            if facts.get("cause") == "buyer":
                return _("L'acheteur a annulé la commande.")
            said = (_("%(provider)s indique que le paiement a été annulé.", provider=provider)
                    if facts.get("status") == PaymentStatus.CANCELLED
                    else _("%(provider)s indique que le paiement a été refusé.", provider=provider))
            return " ".join(filter(None, (said, source)))
        case EventKind.EXPIRED:
            if facts.get("status") == PaymentStatus.EXPIRED:
                return " ".join(filter(None, (_("%(provider)s indique que le paiement a expiré.", provider=provider),
                                              source)))
            return _("Aucun paiement reçu à temps : commande abandonnée.")
        case EventKind.ROUTER_ERROR:
            return _("Ticket pas encore créé (essai %(attempt)s) : %(reason)s", attempt=facts["attempt"],
                     reason=router_failure(facts["failure"], facts.get("router_message", "")))
        case EventKind.CLIENT_LOGGED_IN:
            return _("Appareil de l'acheteur connecté au hotspot (%(ip)s).", ip=order.client_ip)
        case EventKind.PROVISIONED:
            return _("Ticket créé sur le routeur %(router)s.", router=facts.get("router") or order.router.name)
        case EventKind.RETRY_ASKED:
            return _("Vous avez demandé un nouvel essai.")
        case EventKind.OWNER_ALERTED:
            return _("Alerte envoyée à %(email)s : paiement reçu depuis plus de %(minutes)s minutes, ticket pas "
                     "encore créé.", email=facts["to"], minutes=facts["minutes"])
        case EventKind.SALE_EMAIL_SENT:
            return _("E-mail de vente envoyé à %(email)s.", email=facts["to"])
        case EventKind.SALE_EMAIL_NOT_SENT:
            return _("E-mail de vente pas encore envoyé (essai %(attempt)s) : le serveur d'e-mail ne l'a pas pris. "
                     "Kiosque réessaiera.", attempt=facts["attempt"])
    return event_kind(event.kind)


# The timeline lines that say why an order is stuck (its last_error).
PROBLEMS = (EventKind.CHECKOUT_FAILED, EventKind.STATUS_CHECK_FAILED, EventKind.AMOUNT_MISMATCH,
            EventKind.ROUTER_ERROR)


def order_problem(order: Order) -> str:
    """The order's last error in the owner's words: its latest problem line of the timeline."""
    problem = next((e for e in reversed(order.events) if e.kind in PROBLEMS), None)
    return event_line(problem) if problem is not None else order.last_error


def sale_channel(provider: str) -> str:
    """How a sale was paid: a provider's name, or cash for tickets sold by hand."""
    return _("Espèces") if provider == "cash" else provider_title(provider)


def ago(moment: datetime) -> str:
    """How long ago, in the page's language: "il y a 40 secondes"."""
    return format_timedelta(moment - datetime.now(UTC), add_direction=True)


def register(app: Flask) -> None:
    app.add_template_filter(price)
    app.add_template_filter(limits)
    app.add_template_filter(ticket_terms)
    app.add_template_filter(provider)
    app.add_template_filter(provider_title)
    app.add_template_filter(network_title)
    app.add_template_filter(country_name)
    app.add_template_filter(phones.example, "phone_example")
    app.add_template_filter(phone_number)
    app.add_template_filter(local_time)
    app.add_template_filter(order_status)
    app.add_template_filter(sale_channel)
    app.add_template_filter(event_kind)
    app.add_template_filter(ago)
    app.add_template_filter(event_line)
    app.add_template_filter(order_problem)
    app.add_template_global(lambda: str(get_locale() or "fr"), "current_locale")
