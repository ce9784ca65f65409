"""Buyer pages: a router's plans, buying, the order's progress, getting a code back.

They are tiny, French first, work without JavaScript and load nothing from other hosts: the
hotspot client reaches only the walled garden, often on a slow link. They set no session, so
their forms carry no CSRF token: the worst a forged submit can do is open a checkout that the
buyer must still approve on their own phone.
"""

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from portal import htmx
from portal.blueprints import errors, positive_int
from portal.extensions import csrf, db, limiter
from portal.models import Order, OrderStatus, PaymentAccount, Plan, Router, TicketStatus
from portal.payments import PROVIDERS, find_network, phones
from portal.payments.base import Network, PaymentProvider
from portal.services import payment_checks, purchase, retrieval
from portal.services.order_state import awaiting_late_payment, find_order

bp = Blueprint("shop", __name__)

MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
SERVER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LOGIN_DELAY_SECONDS = 3  # long enough to read the code before the browser goes to the router
# How often an order's page looks again: each second while it waits for the payment, slowly once
# it failed but may still be paid late.
REFRESH_SECONDS, LATE_PAYMENT_REFRESH_SECONDS = 1, 15


def hotspot_context(values) -> purchase.HotspotContext:
    """The client's mac, ip, wanted page and hotspot server, each kept only if well-formed."""
    mac = values.get("mac", "").strip()
    ip = values.get("ip", "").strip()
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        ip = ""
    server = values.get("server", "").strip()
    return purchase.HotspotContext(
        mac=mac.upper() if MAC.match(mac) else "",
        ip=ip,
        dst=purchase.safe_destination(values.get("dst", "")),
        server=server if SERVER.match(server) else "",
    )


# Pages that show a ticket, or may: no cache (the browser's, a proxy's) keeps a copy.
PRIVATE_PAGES = frozenset({"shop.order_page", "shop.order_status", "shop.retrieve"})


@bp.after_request
def keep_tickets_out_of_caches(response):
    if request.endpoint in PRIVATE_PAGES:
        response.headers["Cache-Control"] = "no-store"
    return response


def load_router(slug: str) -> Router:
    router = db.session.scalar(select(Router).where(Router.slug == slug))
    if router is None:
        abort(404)
    return router


@dataclass(frozen=True)
class PaymentOption:
    """A payment account as buyers see it: the wallets it takes in the router's country, and the
    networks to choose from when its provider charges a phone."""

    account: PaymentAccount
    provider: type[PaymentProvider]
    wallets: tuple[str, ...]
    networks: tuple[Network, ...]


def payment_options(router: Router) -> list[PaymentOption]:
    options = []
    for account in router.offered_accounts:
        provider = PROVIDERS[account.provider]
        enabled = [provider.networks[c] for c in purchase.offered_networks([account])]
        # The account's networks in the hotspot's country; all of them if none is (a country left unset).
        networks = tuple(n for n in enabled if n.country == router.country) or tuple(enabled)
        wallets = (tuple(dict.fromkeys(n.wallet for n in networks)) if provider.networks
                   else provider.wallets.get(router.country, ()))
        options.append(PaymentOption(account, provider, wallets, networks))
    return options


# The fields of the plans page a purchase error can be shown next to; others are shown on top.
PLAN_FORM_FIELDS = ("plan_id", "account_id", "phone", "network", "otp")


def _plans_page(router: Router, context: purchase.HotspotContext, *, error: str | None = None,
                error_field: str | None = None, selected: Plan | None = None, status: int = 200):
    plans = [selected] if selected else [p for p in router.plans if p.active]
    return render_template(
        "shop/plans.html", router=router, plans=plans, options=payment_options(router), context=context,
        intent=secrets.token_urlsafe(16), error=error, form=request.values,
        error_field=error_field if error_field in PLAN_FORM_FIELDS else None,
    ), status


@bp.get("/r/<slug>")
def plans(slug: str):
    """The router's plans, to pick one and pay; the query may choose for the buyer (a plan button of
    the login page, an order's "Réessayer" or "Changer de numéro")."""
    return _plans_page(load_router(slug), hotspot_context(request.args))


# -- limits ----------------------------------------------------------------------------------------
# A hotspot's clients all reach Kiosque from its one public address, so the only limits keyed by
# that address are ceilings far above what its busiest hour needs. Each client has its own
# limits, keyed by what the form names (the router and the client's MAC or IP address from the
# login page; for retrieval also the reference and the phone typed). Only requests that got past
# validation count: junk costs nothing to the next buyer behind the same address. Keys are keyed
# digests, as limit keys can appear in log lines and a reference may be an order code.


def _limit(name: str):
    return lambda: current_app.config[name]


def _digest(*parts: str) -> str:
    message = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(current_app.secret_key.encode(), message, hashlib.sha256).hexdigest()[:32]


def _client() -> str:
    """The hotspot client the form names (its MAC, else its address on the hotspot), or ""."""
    context = hotspot_context(request.form)
    return context.mac or context.ip


def _client_key() -> str:
    # The public address too: nobody elsewhere can use up the limits of a client they name.
    return _digest("client", get_remote_address(), request.view_args.get("slug", ""), _client())


def _counted(_response) -> bool:
    """Whether this request passed validation, so that it counts against the limits."""
    return g.get("shop_counted", False)


@bp.post("/r/<slug>/buy")
@csrf.exempt
@limiter.limit(_limit("BUY_RATE_LIMIT"), key_func=_client_key, exempt_when=lambda: not _client(),
               deduct_when=_counted)
@limiter.limit(_limit("BUY_ADDRESS_RATE_LIMIT"), deduct_when=_counted)
def buy(slug: str):
    """Create the order and send the buyer to pay (or to wait for the prompt on their phone)."""
    router = load_router(slug)
    form = request.form
    context = hotspot_context(form)
    intent = form.get("intent", "")[:48] or secrets.token_urlsafe(16)
    try:
        order = purchase.start_purchase(
            router, plan_id=positive_int(form.get("plan_id")), account_id=positive_int(form.get("account_id")),
            intent=intent, phone=form.get("phone", ""), network=form.get("network", ""), context=context,
            otp=form.get("otp", "")[:16],
        )
    except purchase.PurchaseError as exc:
        # Refused input made no order and does not count; a checkout the provider refused does.
        g.shop_counted = db.session.scalar(select(Order.id).where(Order.intent == intent)) is not None
        return _plans_page(router, context, error=str(exc), error_field=exc.field, status=422)
    g.shop_counted = True
    order = purchase.wait_for_checkout(order, current_app.config["CHECKOUT_WAIT"])
    if order.status == OrderStatus.FAILED:
        return _plans_page(router, context, error=_("Ce paiement n'a pas pu démarrer. Réessayez."), status=422)
    return htmx.redirect_to(order.checkout_url or url_for(".order_page", code=order.code))


@bp.errorhandler(429)
def too_many(exc):
    """Over a limit: the buyer's own page again, in their language, with what they typed."""
    if request.endpoint == "shop.buy":
        router = db.session.scalar(select(Router).where(Router.slug == request.view_args["slug"]))
        if router is not None:
            message = _("Trop de demandes en peu de temps depuis ce hotspot. Patientez une minute puis "
                        "réessayez : ce que vous avez saisi est gardé.")
            return _plans_page(router, hotspot_context(request.form), error=message, status=429)
    if request.endpoint == "shop.retrieve":
        message = _("Trop d'essais en peu de temps pour retrouver un code. Patientez une minute puis réessayez : "
                    "ce que vous avez saisi est gardé.")
        return _retrieve_page(error=message, status=429)
    message = _("Trop de demandes en peu de temps. Patientez une minute puis réessayez.")
    return render_template("shop/message.html", title=_("Patientez un peu"), message=message), 429


@bp.errorhandler(HTTPException)
def buyer_error(exc: HTTPException):
    """Other errors on a buyer's page keep the buyer's layout, which leads nowhere near the owners' pages."""
    return render_template("shop/message.html", title=_("Erreur %(code)s", code=exc.code),
                           message=errors.message_for(exc)), exc.code


def load_order(code: str) -> Order:
    order = find_order(code)
    if order is None:
        abort(404)
    return order


def _order_key() -> str:
    return _digest("order", request.view_args.get("code", "").upper())


# One order's page polls each second; anything well beyond is not a buyer (the code is hashed:
# limit keys may reach the logs, and the code opens the ticket).
order_limit = limiter.shared_limit(_limit("ORDER_PAGE_RATE_LIMIT"), scope="order", key_func=_order_key)


@bp.route("/o/<code>", methods=("GET", "POST"))
@csrf.exempt  # some providers bring the buyer back with a POST
@order_limit
def order_page(code: str):
    """Where the order stands; also every provider's return address."""
    order = load_order(code)
    # Providers bring the buyer back with the payment's id in the query or in a POST: a hint to check.
    if request.method == "POST":
        # Answered with a redirect, so that reloading the page does not post the return again.
        payment_checks.poll(order, returned=True)
        return redirect(url_for(".order_page", code=order.code), 303)
    payment_checks.poll(order, returned="id" in request.args)
    return render_template("shop/order.html", order=order, **_order_view(order))


@bp.get("/o/<code>/status")
@order_limit
def order_status(code: str):
    """The order page's polled fragment; a full reload once the order is settled."""
    order = load_order(code)
    payment_checks.poll(order)
    view = _order_view(order)
    if not view["refresh"]:
        return htmx.reload_page()
    return render_template("shop/_order_status.html", order=order, **view)


@bp.post("/o/<code>/cancel")
@csrf.exempt
@order_limit
def cancel(code: str):
    """The buyer gives up waiting for the payment (the order page's "Annuler")."""
    order = load_order(code)
    purchase.cancel(order)
    return redirect(url_for(".order_page", code=order.code), 303)


def _order_view(order: Order) -> dict:
    """What the order page shows: the ticket, whether the client is online, where to log in; while
    the payment waits, when the order expires and the plans page filled in with its choices."""
    ticket = order.ticket if order.ticket and order.ticket.status == TicketStatus.CREATED else None
    online = bool(ticket and ticket.login_result == "ok")
    refresh = None
    if not order.is_final:
        refresh = REFRESH_SECONDS
    elif awaiting_late_payment(order):
        refresh = LATE_PAYMENT_REFRESH_SECONDS
    return {
        "refresh": refresh,  # seconds between looks at the order; None once it is settled
        "ticket": ticket,
        "online": online,
        "login_url": router_login_url(order.router, ticket, order.link_orig) if ticket and not online else "",
        "destination": order.link_orig,
        "login_delay": LOGIN_DELAY_SECONDS,
        "network": find_network(order.network),
        "expires_at": order.created_at + timedelta(seconds=current_app.config["ORDER_TTL"]),
        "plans_url": plans_url(order),
        "demo_phone_url": current_app.config["DEMO_PHONE_URL"],
    }


def plans_url(order: Order) -> str:
    """The router's plans page filled in with the order's choices: to change them, or to try again."""
    choices = {"mac": order.client_mac, "ip": order.client_ip, "dst": order.link_orig, "server": order.hotspot_server,
               "plan_id": order.plan_id, "account_id": order.account_id,
               "phone": phones.readable(order.payer_phone) if order.payer_phone else "",
               "network": order.network}
    return url_for(".plans", slug=order.router.slug, **{name: value for name, value in choices.items() if value})


def router_login_url(router: Router, ticket, destination: str) -> str:
    """Where the browser logs in: always built from the router's own DNS name, never from a link.

    With http-pap allowed the router takes the credentials in a plain GET; otherwise the
    generated login.html reads them from the URL fragment (never sent over the network) and
    logs in with CHAP.
    """
    if not router.dns_name:
        return ""
    base = f"http://{router.dns_name}/login"
    dst = {"dst": destination} if destination else {}
    credentials = {"username": ticket.username, "password": ticket.password}
    if router.takes_pap:
        return f"{base}?{urlencode({**credentials, **dst})}"
    return f"{base}?{urlencode(dst)}#{urlencode(credentials)}" if dst else f"{base}#{urlencode(credentials)}"


def _reference_key() -> str:
    return _digest("reference", request.form.get("reference", "").strip().upper())


def _phone_key() -> str:
    return _digest("phone", _phone_digits()[-8:])


def _phone_digits() -> str:
    return "".join(ch for ch in request.form.get("phone", "") if ch.isdigit())


def _retrieval_counted(_response) -> bool:
    """A retrieval counts when it could have found a ticket: a reference and a whole phone number."""
    return len(request.form.get("reference", "").strip()) >= 4 and len(_phone_digits()) >= 8


@bp.route("/retrieve", methods=("GET", "POST"))
@csrf.exempt
@limiter.limit(_limit("RETRIEVE_RATE_LIMIT"), methods=["POST"], key_func=_reference_key,
               deduct_when=_retrieval_counted)
@limiter.limit(_limit("RETRIEVE_RATE_LIMIT"), methods=["POST"], key_func=_phone_key,
               deduct_when=_retrieval_counted)
@limiter.limit(_limit("RETRIEVE_CLIENT_RATE_LIMIT"), methods=["POST"], key_func=_client_key,
               exempt_when=lambda: not _client(), deduct_when=_retrieval_counted)
@limiter.limit(_limit("RETRIEVE_ADDRESS_RATE_LIMIT"), methods=["POST"], deduct_when=_retrieval_counted)
def retrieve():
    """Get a ticket back with the payment reference (or order code) and the payer's phone."""
    ticket, error = None, None
    if request.method == "POST":
        ticket = retrieval.retrieve(request.form.get("reference", ""), request.form.get("phone", ""))
        if ticket is None:
            error = _("Aucun ticket ne correspond à cette référence et à ce numéro.")
    return _retrieve_page(ticket=ticket, error=error, status=200 if error is None else 404)


def _retrieve_page(*, ticket=None, error: str | None = None, status: int = 200):
    login_url = router_login_url(ticket.router, ticket, "") if ticket else ""
    # The client's MAC and address, when the login page's link gave them, go with the form.
    context = hotspot_context(request.form if request.method == "POST" else request.args)
    return render_template("shop/retrieve.html", ticket=ticket, error=error, login_url=login_url,
                           form=request.form, context=context), status


# -- the link shapes of the guide Kiosque replaces --------------------------------------------------

# Path -> the provider whose buy links the guide sent there (each adapter knows its own).
GUIDE_LINKS = {cls.guide_buy_path: cls for cls in PROVIDERS.values() if cls.guide_buy_path}


def guide_link():
    """A buy link of the guide: its keys find the account, nasid the router, profile and amount a plan.

    Only the plan's own price is ever charged; the buyer sees it and confirms before paying.
    """
    adapter = GUIDE_LINKS[request.path]
    args = request.args
    accounts = _guide_accounts(adapter.name, args.get(adapter.guide_public_id_param, "").strip())
    context = purchase.HotspotContext(**{**hotspot_context(args).__dict__, "server": args.get("nasid", "")[:64]})
    router = _guide_router(accounts, args.get("nasid", "").strip())
    plan = None
    if router is not None:
        plan = db.session.scalar(select(Plan).where(
            Plan.router_id == router.id, Plan.active, Plan.profile == args.get("profile_name", ""),
            Plan.price == positive_int(args.get("amount"))))
    if plan is None:
        return render_template("shop/message.html", title=_("Lien de paiement invalide"), message=_(
            "Ce lien ne correspond à aucun forfait en vente. Rien n'a été débité. Revenez à la page de "
            "connexion du hotspot et choisissez un forfait.")), 404
    return _plans_page(router, context, selected=plan)


def _guide_accounts(provider: str, public_id: str) -> list[PaymentAccount]:
    """The active accounts with this public id, when they are all one owner's; else none.

    A public id names one owner's shop: when two owners have it (saved before Kiosque refused
    that), the link could lead to either, so it leads to neither.
    """
    if not public_id:
        return []
    found = db.session.scalars(select(PaymentAccount).where(
        PaymentAccount.provider == provider, PaymentAccount.public_id == public_id)).all()
    if len({a.owner_id for a in found}) != 1:
        return []
    return [a for a in found if a.active]


def _guide_router(accounts: list[PaymentAccount], nasid: str) -> Router | None:
    """The router offering one of these accounts whose hotspot server is `nasid` (or the only one)."""
    routers = list({r.id: r for a in accounts for r in a.routers if a in r.offered_accounts}.values())
    named = [r for r in routers if nasid and (r.hotspot_server == nasid or
                                              nasid in [s["name"] for s in r.facts.get("servers", [])])]
    if len(named) == 1:
        return named[0]
    return routers[0] if len(routers) == 1 else None


for path, adapter in GUIDE_LINKS.items():
    bp.add_url_rule(path, f"guide_{adapter.name}", guide_link)


@bp.get("/retrieve-mikhmon-code")
def guide_retrieve():
    """The guide's retrieval link."""
    return redirect(url_for(".retrieve"), 301)
