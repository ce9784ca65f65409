"""HTTP look-alikes of the FedaPay, CinetPay and FeexPay APIs, for the tests and `make run`.

They follow docs/providers.md (#sandbox-look-alikes): the same paths, field names,
status values, error bodies and signature schemes, with hosted pages to approve, decline or
cancel a payment, and knobs that reproduce what goes wrong in real life. None of this code is
shared with the adapters in portal/payments, so the tests check one against the other.

The app mounts `blueprint()` under /sandbox; `start()` serves it alone on a loopback port.

    FedaPay   /sandbox/fedapay/<environment>/v1/transactions              POST create, GET list
              /sandbox/fedapay/<environment>/v1/transactions/<id>         GET
              /sandbox/fedapay/<environment>/v1/transactions/<id>/token   POST -> hosted page url
              /sandbox/fedapay/process/<token>                            hosted checkout page
              (<environment> is "live" or "sandbox": FedaPay's two API hosts, each with its own keys)
    CinetPay  /sandbox/cinetpay/v2/payment                                POST create
              /sandbox/cinetpay/v2/payment/check                          POST status
              /sandbox/cinetpay/payment/<token>                           hosted checkout page
    FeexPay   /sandbox/feexpay/api/transactions/public/requesttopay/<network>    POST push, page or code
              /sandbox/feexpay/api/transactions/public/single/status/<reference> GET status
              /sandbox/feexpay/phone                                      pending pushes, by phone
              /sandbox/feexpay/phone/<reference>                          the phone's confirmation prompt
              /sandbox/feexpay/pay/<reference>                            a network's payment page (Wave, Orange)
    Control   /sandbox/control/<provider>/<ref>/<approve|decline|cancel>  POST: settle without a browser
              /sandbox/control/<provider>/transactions                    GET: the transactions as JSON
              /sandbox/control/knobs                                      GET, or POST a JSON object to set knobs

Provider references: FedaPay's transaction id, CinetPay's transaction_id (our order code, unique
across sites here) and FeexPay's reference.

Behaviours the reference leaves open, and what the sandbox does:
- Error texts FedaPay and FeexPay use are not documented; the sandbox uses Laravel's
  ("Unauthenticated.", "The given data was invalid.") and FeexPay's SDK messages.
- CinetPay's code for checking an unknown transaction is not documented: HTTP 400, code 404.
- FedaPay sends no `transaction.created` webhook at creation (`out_of_order` sends one late).
- FeexPay's networks follow one reading each of docs/providers.md#feexpay-networks (a push, a
  payment page, or a payment code first); the `feexpay_flow` knob gives every network another.
  Its words for a missing code are not documented: "An OTP code is required for this network".
  Its payment pages send the buyer back to `return_url` (`cancel_url` on cancel) with nothing
  added, as nothing is documented.
"""

from __future__ import annotations

import copy
from collections import Counter
import hashlib
import hmac
import itertools
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from flask import Blueprint, Flask, Response, jsonify, redirect, request, url_for
from markupsafe import Markup
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from portal.payments import PROVIDERS as ADAPTERS
from sandbox import allow_inline

URL_PREFIX = "/sandbox"
PROVIDERS = ("fedapay", "cinetpay", "feexpay")
OUTCOMES = ("approve", "decline", "cancel")
NOTIFY_TIMEOUT = 5.0
RETRY_PAUSE = 0.5
STALE_BY = 600  # seconds: twice FedaPay's tolerance

# The knobs, their defaults, and what the HTTP control endpoint accepts for each.
KNOBS: dict[str, Any] = {
    "duplicate_notifications": 1,  # send each notification N times
    "notification_delay": 0.0,  # seconds before the first notification leaves
    "notification_retries": 0,  # re-sends after a non-2xx answer or no answer
    "out_of_order": False,  # after the final notification, one for the earlier pending state
    "lose_notifications": False,  # send nothing
    "forge_signatures": False,  # FedaPay/CinetPay: wrong key; FeexPay (unsigned): claims SUCCESSFUL
    "stale_signatures": False,  # FedaPay: timestamp older than the 300 s tolerance
    # A refused payment may still be approved: FedaPay's support validating a debit by hand, a
    # CinetPay buyer trying again on the same page, an operator's late answer.
    "late_approvals": False,
    "outage": False,  # every API call answers 503
    # Payments are created, then the answer is lost: 502, as from a proxy in front of a dead host.
    "outage_after_create": False,
    "outage_drops_connection": False,  # with an outage: close the connection instead (standalone server)
    "api_latency": 0.0,  # seconds each API call waits before it is answered (a provider far away)
    "fedapay_event_key": "name",  # "name" (webhooks) or "type" (events API)
    "cinetpay_ipn_fields": "full",  # "full", "no_error_message" or "ids_only" (the 2021 draft)
    "cinetpay_ping": False,  # a GET without data to notify_url before each IPN
    "cinetpay_ipn_encoding": "urlencoded",  # or "multipart": the IPN's media type is undocumented
    # FedaPay refuses a customer: None, "with_phone" (any phone) or "without_email" (the customer pages' reading)
    "fedapay_refuse_customer": None,
    "feexpay_push_outcome": None,  # None, "SUCCESSFUL" or "FAILED": settle the push at once
    "feexpay_status_in_data": False,  # wrap the status answer in {"data": ...}
    "feexpay_status_unauthorized": False,  # the status call answers 401 whatever the token
    # None: each network's own flow (FEEXPAY_NETWORKS); else every network's: "push", "redirect",
    # "otp" (a code first, then as a push) or "otp_redirect" (a code first, then a payment page).
    "feexpay_flow": None,
    "feexpay_refuse_otp": False,  # every payment code is refused, as a wrong or used one would be
}
_KNOB_CHOICES: dict[str, tuple[Any, ...]] = {
    "fedapay_event_key": ("name", "type"),
    "cinetpay_ipn_fields": ("full", "no_error_message", "ids_only"),
    "cinetpay_ipn_encoding": ("urlencoded", "multipart"),
    "fedapay_refuse_customer": (None, "with_phone", "without_email"),
    "feexpay_push_outcome": (None, "SUCCESSFUL", "FAILED"),
    "feexpay_flow": (None, "push", "redirect", "otp", "otp_redirect"),
}

# -- FedaPay ------------------------------------------------------------------------------------
FEDAPAY_CURRENCIES = ("XOF", "GNF", "EUR")
FEDAPAY_EVENTS = {"pending": "created", "approved": "approved", "declined": "declined", "canceled": "canceled"}

# -- CinetPay -----------------------------------------------------------------------------------
CINETPAY_IPN_FIELDS = (
    "cpm_site_id", "cpm_trans_id", "cpm_trans_date", "cpm_amount", "cpm_currency", "signature",
    "payment_method", "cel_phone_num", "cpm_phone_prefixe", "cpm_language", "cpm_version",
    "cpm_payment_config", "cpm_page_action", "cpm_custom", "cpm_designation", "cpm_error_message",
)
CINETPAY_CURRENCIES = ("XOF", "XAF", "CDF", "GNF", "USD")
CINETPAY_CHANNELS = ("ALL", "MOBILE_MONEY", "CREDIT_CARD", "WALLET")
CINETPAY_REQUIRED = ("transaction_id", "amount", "currency", "description", "notify_url", "return_url")
# outcome -> (code, message, data.status)
CINETPAY_STATES = {
    "pending": ("662", "WAITING_CUSTOMER_PAYMENT", "WAITING_FOR_CUSTOMER"),
    "approve": ("00", "SUCCES", "ACCEPTED"),
    "decline": ("602", "INSUFFICIENT_BALANCE", "REFUSED"),
    "cancel": ("627", "TRANSACTION_CANCEL", "REFUSED"),
}

# -- FeexPay ------------------------------------------------------------------------------------
# network -> (dial code, currency, flow). Where the sources disagree (Moov CI and BF, Free SN,
# Orange BF and SN), one reading; `feexpay_flow` plays the others.
FEEXPAY_NETWORKS = {
    "mtn": ("229", "XOF", "push"), "moov": ("229", "XOF", "push"), "celtiis_bj": ("229", "XOF", "push"),
    "coris": ("229", "XOF", "push"),
    "togocom_tg": ("228", "XOF", "push"), "moov_tg": ("228", "XOF", "push"),
    "mtn_ci": ("225", "XOF", "push"), "moov_ci": ("225", "XOF", "push"),
    "orange_ci": ("225", "XOF", "redirect"), "wave_ci": ("225", "XOF", "redirect"),
    "orange_bf": ("226", "XOF", "otp"), "moov_bf": ("226", "XOF", "push"),
    "orange_sn": ("221", "XOF", "otp"), "free_sn": ("221", "XOF", "push"), "wave_sn": ("221", "XOF", "redirect"),
    "mtn_cg": ("242", "XAF", "push"),
}
FEEXPAY_OTP = re.compile(r"[0-9]{4,8}")
FEEXPAY_STATES = {  # outcome -> (status, reason)
    "approve": ("SUCCESSFUL", None),
    "decline": ("FAILED", "LOW_BALANCE_OR_PAYEE_LIMIT_REACHED_OR_NOT_ALLOWED"),
    "cancel": ("FAILED", "APPROVAL_REJECTED"),
}


class Conflict(ValueError):
    """The payment is no longer pending."""


@dataclass(frozen=True)
class _Notification:
    """One notification, signed when it leaves (as the providers do) with the knobs of its time."""

    provider: str
    url: str
    payload: dict[str, Any] | None  # None: CinetPay's availability ping (GET, no data)
    secret: str = ""
    forge: bool = False
    stale: bool = False
    multipart: bool = False  # CinetPay: the IPN as multipart/form-data


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Keep test output free of one line per request."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _with_query(url: str, params: dict[str, str]) -> str:
    """Append parameters to a URL, keeping those already there."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _money(amount: int, currency: str) -> str:
    figure = f"{amount:,}".replace(",", "\u202f")
    return f"{figure} F\u202fCFA" if currency in ("XOF", "XAF") else f"{figure} {currency}"


def _page(title: str, body: Markup | str, status: int = 200) -> Response:
    """A tiny self-contained page: no external asset can load behind a walled garden."""
    html = Markup(
        '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title>'
        "<style>body{{font:16px/1.4 sans-serif;margin:0;background:#eef}}main{{max-width:24rem;margin:2rem auto;"
        "padding:1rem;background:#fff;border-radius:8px}}button{{display:block;width:100%;margin:.5rem 0;"
        "padding:.7rem;font-size:1rem}}small{{color:#666}}</style></head><body><main>"
        "<small>Bac à sable : aucun argent réel</small><h1>{title}</h1>{body}</main></body></html>"
    ).format(title=title, body=body)
    return Response(html, status=status, mimetype="text/html")


def _choices(action_url: str, buttons: list[tuple[str, str]]) -> Markup:
    """One form, one submit button per outcome: the button's value says which."""
    rows = Markup("").join(
        Markup('<button type="submit" name="action" value="{}">{}</button>').format(value, label)
        for value, label in buttons
    )
    return Markup('<form method="post" action="{}">{}</form>').format(action_url, rows)


class ProviderSandbox:
    """In-memory state shared by the three look-alikes; safe to use from several threads."""

    # The knobs (see KNOBS): plain attributes, read when a payment settles.
    duplicate_notifications: int
    notification_delay: float
    notification_retries: int
    out_of_order: bool
    lose_notifications: bool
    forge_signatures: bool
    stale_signatures: bool
    late_approvals: bool
    outage: bool
    outage_after_create: bool
    outage_drops_connection: bool
    api_latency: float
    fedapay_event_key: str
    cinetpay_ipn_fields: str
    cinetpay_ping: bool
    cinetpay_ipn_encoding: str
    fedapay_refuse_customer: str | None
    feexpay_push_outcome: str | None
    feexpay_status_in_data: bool
    feexpay_status_unauthorized: bool
    feexpay_flow: str | None
    feexpay_refuse_otp: bool

    def __init__(self, *, public_url: str | None = None) -> None:
        """`public_url` is the root URL browsers and adapters use to reach the app mounting us."""
        self.serve_at(public_url)
        for knob, default in KNOBS.items():
            setattr(self, knob, default)
        self._lock = threading.RLock()
        # FedaPay's ids, from the clock in milliseconds: a restarted demo keeps its database, whose
        # orders hold the ids handed out before, and fewer than one id a millisecond is ever asked for.
        self._ids = itertools.count(time.time_ns() // 1_000_000)
        self._fedapay_accounts: dict[str, dict[str, Any]] = {}  # by secret key
        self._cinetpay_accounts: dict[str, dict[str, str]] = {}  # by site_id
        self._feexpay_accounts: dict[str, dict[str, Any]] = {}  # by token
        self._fedapay: dict[str, dict[str, Any]] = {}  # by id: {"tx", "account", "environment", "currency", ...}
        self._fedapay_tokens: dict[str, str] = {}  # token -> id
        self._cinetpay: dict[str, dict[str, Any]] = {}  # by transaction_id
        self._feexpay: dict[str, dict[str, Any]] = {}  # by reference
        self.api_calls: Counter[str] = Counter()  # API calls received, by endpoint ("fedapay_get"...)
        self._in_flight = 0
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- serving ---------------------------------------------------------------------------------

    def serve_at(self, public_url: str | None) -> None:
        """Set the root URL of the app mounting us (the demo learns its port late)."""
        self.public_url = public_url.rstrip("/") if public_url else None
        self.base_url: str | None = f"{self.public_url}{URL_PREFIX}" if self.public_url else None

    def start(self) -> ProviderSandbox:
        """Serve the look-alikes alone on a random loopback port, from a daemon thread."""
        app = Flask(__name__)
        app.register_blueprint(self.blueprint(), url_prefix=URL_PREFIX)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        self.base_url = f"http://127.0.0.1:{self._server.port}{URL_PREFIX}"
        # A short poll interval keeps stop() quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop the notifications still waiting to leave."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def api_url(self, provider: str, environment: str = "sandbox") -> str:
        """The base URL an adapter should use (FedaPay has separate live and sandbox hosts)."""
        if self.base_url is None:
            raise RuntimeError("the sandbox has no URL: start() it or give it a public_url")
        if provider == "fedapay":
            if environment not in ("live", "sandbox"):
                raise ValueError(f"unknown FedaPay environment {environment!r}")
            return f"{self.base_url}/fedapay/{environment}"
        if provider not in PROVIDERS:
            raise KeyError(provider)
        return f"{self.base_url}/{provider}"

    def api_settings(self) -> dict[str, str]:
        """The app settings that send every payment adapter's calls here."""
        return {adapter.api_url_setting(environment): self.api_url(name, environment)
                for name, adapter in ADAPTERS.items() for environment in adapter.api_urls}

    def phone_url(self, reference: str) -> str:
        """The page standing for the buyer's phone prompt of a FeexPay push."""
        return f"{self.phones_url()}/{reference}"

    def phones_url(self) -> str:
        """The page listing the FeexPay pushes waiting on buyers' phones."""
        if self.base_url is None:
            raise RuntimeError("the sandbox has no URL: start() it or give it a public_url")
        return f"{self.base_url}/feexpay/phone"

    # -- accounts --------------------------------------------------------------------------------

    def add_fedapay_account(self, *, secret_key: str, public_key: str, webhook_secret: str, webhook_url: str) -> None:
        """Register keys; the `sk_sandbox_` / `sk_live_` prefix decides which host accepts them."""
        environment = next((e for e in ("sandbox", "live") if secret_key.startswith(f"sk_{e}_")), None)
        if environment is None:
            raise ValueError("FedaPay secret keys start with sk_sandbox_ or sk_live_")
        with self._lock:
            self._fedapay_accounts[secret_key] = {
                "id": next(self._ids),
                "environment": environment,
                "public_key": public_key,
                "webhook_secret": webhook_secret,
                "webhook_url": webhook_url,
            }

    def add_account(self, provider: str, credentials: dict[str, str], *, webhook_url: str) -> None:
        """Register an account's credentials, as its owner's dashboard at the provider would hold them."""
        if provider == "fedapay":
            self.add_fedapay_account(**credentials, webhook_url=webhook_url)
        elif provider == "cinetpay":
            self.add_cinetpay_account(**credentials)  # CinetPay takes the notify_url with each payment
        elif provider == "feexpay":
            self.add_feexpay_account(**credentials, webhook_url=webhook_url)
        else:
            raise KeyError(provider)

    def add_cinetpay_account(self, *, apikey: str, site_id: str, secret_key: str) -> None:
        with self._lock:
            self._cinetpay_accounts[site_id] = {"apikey": apikey, "secret_key": secret_key}

    def add_feexpay_account(self, *, shop_id: str, token: str, webhook_url: str | None = None) -> None:
        with self._lock:
            self._feexpay_accounts[token] = {"shop_id": shop_id, "webhook_url": webhook_url}

    # -- driving payments ------------------------------------------------------------------------

    def approve(self, provider: str, provider_ref: str) -> None:
        self._settle(provider, provider_ref, "approve")

    def decline(self, provider: str, provider_ref: str) -> None:
        self._settle(provider, provider_ref, "decline")

    def cancel(self, provider: str, provider_ref: str) -> None:
        self._settle(provider, provider_ref, "cancel")

    def transactions(self, provider: str) -> list[dict[str, Any]]:
        """Copies of the provider-shaped records, oldest first."""
        with self._lock:
            if provider == "fedapay":
                return [self._fedapay_view(entry, "currency,customer") for entry in self._fedapay.values()]
            if provider == "cinetpay":
                return [copy.deepcopy(payment) for payment in self._cinetpay.values()]
            if provider == "feexpay":
                return [copy.deepcopy(payment) for payment in self._feexpay.values()]
        raise KeyError(provider)

    def knobs(self) -> dict[str, Any]:
        return {knob: getattr(self, knob) for knob in KNOBS}

    def set_knobs(self, **values: Any) -> None:
        """Set knobs by name, checking names and values (what the control endpoint calls)."""
        for knob, value in values.items():
            if knob not in KNOBS:
                raise ValueError(f"unknown knob {knob!r}")
            default = KNOBS[knob]
            if knob in _KNOB_CHOICES:
                valid = value in _KNOB_CHOICES[knob]
            elif isinstance(default, bool):
                valid = isinstance(value, bool)
            else:
                valid = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            if not valid:
                raise ValueError(f"invalid value for {knob}: {value!r}")
        for knob, value in values.items():
            setattr(self, knob, value)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every notification sent so far has been delivered (or given up on)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _settle(self, provider: str, ref: str, outcome: str) -> dict[str, Any]:
        """Move a pending payment to its outcome, queue its notifications; return the record."""
        settle = {"fedapay": self._fedapay_settle, "cinetpay": self._cinetpay_settle, "feexpay": self._feexpay_settle}
        if provider not in settle:
            raise KeyError(provider)
        # CinetPay's page can also leave a payment waiting, which still sends an IPN.
        if outcome not in OUTCOMES and not (provider == "cinetpay" and outcome == "pending"):
            raise ValueError(f"unknown outcome {outcome!r}")
        with self._lock:
            record, earlier, final = settle[provider](ref, outcome)
        self._send(final, earlier)
        return record

    def _settleable(self, pending: bool, paid: bool, outcome: str) -> bool:
        """A pending payment takes any outcome; a refused one turns paid only with `late_approvals`."""
        return pending or (outcome == "approve" and self.late_approvals and not paid)

    # -- notifications ---------------------------------------------------------------------------

    def _send(self, final: list[_Notification], earlier: list[_Notification]) -> None:
        """Deliver from a background thread, shaped by the knobs as they are now."""
        if self.lose_notifications or not final:
            return
        batch = [n for n in final for _ in range(max(1, int(self.duplicate_notifications)))]
        if self.out_of_order:
            batch += earlier
        with self._idle:
            self._in_flight += 1
        args = (batch, float(self.notification_delay), int(self.notification_retries))
        threading.Thread(target=self._deliver, args=args, daemon=True).start()

    def _deliver(self, batch: list[_Notification], delay: float, retries: int) -> None:
        try:
            if self._stopping.wait(delay):
                return
            for notification in batch:
                for attempt in range(retries + 1):
                    if attempt and self._stopping.wait(RETRY_PAUSE):
                        return
                    try:
                        answer = requests.request(url=notification.url, timeout=NOTIFY_TIMEOUT,
                                                  **self._wire(notification))
                    except requests.RequestException:
                        continue  # the receiver is down: that is what retries are for
                    if answer.status_code < 300:
                        break
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _wire(self, n: _Notification) -> dict[str, Any]:
        """The request of a notification (method, body, headers), signed now per the provider's scheme."""
        key = ("forged-" + n.secret if n.forge else n.secret).encode()
        if n.payload is None:
            return {"method": "GET"}
        if n.provider == "fedapay":
            body = json.dumps(n.payload).encode()
            timestamp = str(int(time.time()) - (STALE_BY if n.stale else 0))
            signature = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/json", "X-FEDAPAY-SIGNATURE": f"t={timestamp},s={signature}"}
            return {"method": "POST", "data": body, "headers": headers}
        if n.provider == "cinetpay":
            message = "".join(n.payload.get(name, "") for name in CINETPAY_IPN_FIELDS).encode()
            signed = {"x-token": hmac.new(key, message, hashlib.sha256).hexdigest()}
            if n.multipart:  # form fields without files: (None, value) makes requests encode multipart
                return {"method": "POST", "files": {k: (None, v) for k, v in n.payload.items()}, "headers": signed}
            return {"method": "POST", "data": n.payload, "headers": signed}
        return {"method": "POST", "data": json.dumps(n.payload).encode(), "headers": {"Content-Type": "application/json"}}

    # -- request helpers -------------------------------------------------------------------------

    def _external(self, endpoint: str, **values: Any) -> str:
        root = self.public_url or request.host_url.rstrip("/")
        return root + url_for(endpoint, **values)

    def _api(self, view: Callable[..., Any], *, creates: bool = False) -> Callable[..., Any]:
        """Wrap an API view (not a page) so the outage and latency knobs reach it; `creates`: it makes a payment."""

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.api_calls[view.__name__.lstrip("_")] += 1
            if self.api_latency > 0:
                self._stopping.wait(self.api_latency)
            if self.outage:
                return self._down(503, "Service Temporarily Unavailable")
            answer = view(*args, **kwargs)
            if creates and self.outage_after_create:  # made, but the answer never comes back
                return self._down(502, "Bad Gateway")
            return answer

        return wrapper

    def _down(self, status: int, reason: str) -> Response:
        """What a failing host or proxy answers; with outage_drops_connection, a closed connection."""
        sock = request.environ.get("werkzeug.socket")
        if self.outage_drops_connection and sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        return Response(f"<html><body><h1>{status} {reason}</h1></body></html>", status=status, mimetype="text/html")

    # -- the blueprint ---------------------------------------------------------------------------

    def blueprint(self) -> Blueprint:
        """All three APIs, their pages and the control endpoints."""
        bp = Blueprint("provider_sandbox", __name__, url_prefix=URL_PREFIX)

        @bp.record_once
        def exempt_from_csrf(state: Any) -> None:
            # Providers and their pages do not carry the app's CSRF token.
            csrf = state.app.extensions.get("csrf")
            if csrf is not None:
                csrf.exempt(bp)

        bp.after_request(allow_inline)
        fedapay = "/fedapay/<any(live, sandbox):environment>/v1/transactions"
        feexpay = "/feexpay/api/transactions/public"
        # (rule, endpoint, view, methods); the outage knobs reach the API calls, not the pages.
        creates = {"fedapay_create", "cinetpay_create", "feexpay_push"}
        api_calls = [
            (fedapay, "fedapay_create", self._fedapay_create, ["POST"]),
            (fedapay, "fedapay_list", self._fedapay_list, ["GET"]),
            (f"{fedapay}/<tx_id>", "fedapay_get", self._fedapay_get, ["GET"]),
            (f"{fedapay}/<tx_id>/token", "fedapay_token", self._fedapay_token, ["POST"]),
            ("/cinetpay/v2/payment", "cinetpay_create", self._cinetpay_create, ["POST"]),
            ("/cinetpay/v2/payment/check", "cinetpay_check", self._cinetpay_check, ["POST"]),
            (f"{feexpay}/requesttopay/<network>", "feexpay_push", self._feexpay_push, ["POST"]),
            (f"{feexpay}/single/status/<reference>", "feexpay_status", self._feexpay_status, ["GET"]),
        ]
        pages = [
            ("/fedapay/process/<token>", "fedapay_page", self._fedapay_page, ["GET", "POST"]),
            ("/cinetpay/payment/<token>", "cinetpay_page", self._cinetpay_page, ["GET", "POST"]),
            ("/feexpay/phone", "feexpay_phones", self._feexpay_phone_list, ["GET"]),
            ("/feexpay/phone/<reference>", "feexpay_phone", self._feexpay_phone, ["GET", "POST"]),
            ("/feexpay/pay/<reference>", "feexpay_page", self._feexpay_page, ["GET", "POST"]),
            ("/control/<provider>/<ref>/<action>", "control_settle", self._control_settle, ["POST"]),
            ("/control/<provider>/transactions", "control_transactions", self._control_transactions, ["GET"]),
            ("/control/knobs", "control_knobs", self._control_knobs, ["GET", "POST"]),
        ]
        for rule, endpoint, view, methods in api_calls:
            bp.add_url_rule(rule, endpoint, self._api(view, creates=endpoint in creates), methods=methods)
        for rule, endpoint, view, methods in pages:
            bp.add_url_rule(rule, endpoint, view, methods=methods)
        return bp

    # -- FedaPay ---------------------------------------------------------------------------------

    def _fedapay_account(self, environment: str) -> tuple[str | None, Any]:
        """The secret key of the caller, or the 401 FedaPay answers."""
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        account = self._fedapay_accounts.get(key)
        if account is None:
            return None, (jsonify(message="Unauthenticated."), 401)
        if account["environment"] != environment:
            message = f"Invalid API key: a {account['environment']} key cannot be used on the {environment} API."
            return None, (jsonify(message=message), 401)
        return key, None

    def _fedapay_view(self, entry: dict[str, Any], include: str = "") -> dict[str, Any]:
        tx = copy.deepcopy(entry["tx"])
        if "currency" in include:
            tx["currency"] = copy.deepcopy(entry["currency"])
        if "customer" in include:
            tx["customer"] = copy.deepcopy(entry["customer"])
        return tx

    def _fedapay_entry(self, environment: str, tx_id: str) -> tuple[dict[str, Any] | None, Any]:
        key, refusal = self._fedapay_account(environment)
        if refusal is not None:
            return None, refusal
        entry = self._fedapay.get(tx_id)
        if entry is None or entry["account"] != key:
            return None, (jsonify(message="Transaction not found"), 404)
        return entry, None

    def _fedapay_create(self, environment: str) -> Any:
        with self._lock:
            key, refusal = self._fedapay_account(environment)
            if refusal is not None:
                return refusal
            data = request.get_json(silent=True)
            if not isinstance(data, dict):
                return jsonify(message="The given data was invalid.", errors={"body": ["must be a JSON object"]}), 422
            errors: dict[str, list[str]] = {}
            if not isinstance(data.get("description"), str) or not data["description"].strip():
                errors["description"] = ["The description field is required."]
            amount = data.get("amount")
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                errors["amount"] = ["The amount must be a positive integer."]
            currency = data.get("currency")
            iso = currency.get("iso") if isinstance(currency, dict) else currency
            if iso not in FEDAPAY_CURRENCIES:
                errors["currency"] = [f"The currency must be one of {', '.join(FEDAPAY_CURRENCIES)}."]
            metadata = data.get("custom_metadata", {})
            if not isinstance(metadata, dict):
                errors["custom_metadata"] = ["The custom metadata must be an object."]
            customer = data.get("customer") or {}
            phone = customer.get("phone_number") if isinstance(customer, dict) else None
            if not isinstance(customer, dict) or (
                phone is not None and not (isinstance(phone, dict) and phone.get("number") and phone.get("country"))
            ):
                errors["customer"] = ["The customer is invalid."]
            elif customer and phone is not None and self.fedapay_refuse_customer == "with_phone":
                errors["customer.phone_number"] = ["The customer phone number is invalid."]
            elif customer and not customer.get("email") and self.fedapay_refuse_customer == "without_email":
                errors["customer.email"] = ["The customer email field is required."]
            if errors:
                return jsonify(message="The given data was invalid.", errors=errors), 422
            tx_id = next(self._ids)
            now = _iso(_now())
            tx = {
                "klass": "v1/transaction",
                "id": tx_id,
                "reference": f"trx_{secrets.token_hex(3).upper()}_{int(time.time() * 1000)}",
                "transaction_key": secrets.token_hex(4).upper(),
                "amount": amount,
                "description": data["description"],
                "callback_url": data.get("callback_url"),
                "status": "pending",
                "customer_id": tx_id if customer else None,
                "currency_id": FEDAPAY_CURRENCIES.index(iso) + 1,
                "mode": None,
                "operation": "payment",
                "custom_metadata": metadata,
                "commission": 0,
                "fees": 0,
                "amount_transferred": 0,
                "last_error_code": None,
                "receipt_url": None,
                "payment_method": None,
                "created_at": now,
                "updated_at": now,
                "approved_at": None,
                "declined_at": None,
                "canceled_at": None,
            }
            entry = {
                "tx": tx,
                "account": key,
                "environment": environment,
                "currency": {"klass": "v1/currency", "id": tx["currency_id"], "iso": iso},
                "customer": {"klass": "v1/customer", "id": tx["customer_id"], **customer} if customer else None,
            }
            self._fedapay[str(tx_id)] = entry
            return jsonify({"v1/transaction": self._fedapay_view(entry, request.args.get("include", ""))}), 201

    def _fedapay_list(self, environment: str) -> Any:
        with self._lock:
            key, refusal = self._fedapay_account(environment)
            if refusal is not None:
                return refusal
            mine = [self._fedapay_view(e) for e in self._fedapay.values() if e["account"] == key]
            per_page = request.args.get("per_page", type=int) or 25
            return jsonify(
                {
                    "v1/transactions": mine[:per_page],
                    "meta": {"current_page": 1, "per_page": per_page, "total_count": len(mine)},
                }
            )

    def _fedapay_get(self, environment: str, tx_id: str) -> Any:
        with self._lock:
            entry, refusal = self._fedapay_entry(environment, tx_id)
            if entry is None:
                return refusal
            return jsonify({"v1/transaction": self._fedapay_view(entry, request.args.get("include", ""))})

    def _fedapay_token(self, environment: str, tx_id: str) -> Any:
        with self._lock:
            entry, refusal = self._fedapay_entry(environment, tx_id)
            if entry is None:
                return refusal
            if entry["tx"]["status"] != "pending":
                return jsonify(message="This transaction can no longer be paid."), 422
            token = secrets.token_urlsafe(24)
            self._fedapay_tokens[token] = tx_id
            return jsonify(token=token, url=self._external(".fedapay_page", token=token))

    def _fedapay_page(self, token: str) -> Response:
        with self._lock:
            tx_id = self._fedapay_tokens.get(token)
            if tx_id is None:
                return _page("Lien de paiement inconnu", "Ce lien de paiement n'existe pas.", 404)
            tx = copy.deepcopy(self._fedapay[tx_id]["tx"])
        title = "Paiement FedaPay"
        if request.method == "POST":
            action = request.form.get("action", "")
            try:
                tx = self._settle("fedapay", tx_id, action)["tx"]
            except Conflict:
                return _page(title, "Cette transaction est déjà traitée.", 409)
            except ValueError:
                return _page(title, "Action inconnue.", 400)
            if tx["callback_url"]:
                return redirect(_with_query(tx["callback_url"], {"id": str(tx["id"]), "status": tx["status"]}))
            return _page(title, f"Transaction {tx['status']}.")
        summary = Markup("<p>{}</p><p><strong>{}</strong></p>").format(
            tx["description"], _money(tx["amount"], self._fedapay[tx_id]["currency"]["iso"])
        )
        if tx["status"] != "pending":
            return _page(title, summary + Markup("<p>Cette transaction est déjà traitée.</p>"))
        buttons = [("approve", "Payer"), ("decline", "Refuser (solde insuffisant)"), ("cancel", "Annuler")]
        return _page(title, summary + _choices(url_for(".fedapay_page", token=token), buttons))

    def _fedapay_settle(
        self, ref: str, outcome: str
    ) -> tuple[dict[str, Any], list[_Notification], list[_Notification]]:
        entry = self._fedapay.get(ref)
        if entry is None:
            raise KeyError(ref)
        tx = entry["tx"]
        if not self._settleable(tx["status"] == "pending", tx["status"] == "approved", outcome):
            raise Conflict(f"transaction {ref} is {tx['status']}")
        earlier = self._fedapay_notifications(entry)
        now = _iso(_now())
        tx["updated_at"] = now
        if outcome == "approve":
            phone = (entry["customer"] or {}).get("phone_number") or {"number": "+22966000001", "country": "bj"}
            tx.update(
                status="approved",
                approved_at=now,
                mode="momo_test",
                payment_method={"brand": "momo_test", "country": phone["country"], "number": phone["number"]},
            )
        elif outcome == "decline":
            tx.update(status="declined", declined_at=now, last_error_code="INSUFFICIENT_FUND_ERROR")
        else:
            tx.update(status="canceled", canceled_at=now)
        return copy.deepcopy(entry), earlier, self._fedapay_notifications(entry)

    def _fedapay_notifications(self, entry: dict[str, Any]) -> list[_Notification]:
        account = self._fedapay_accounts[entry["account"]]
        if not account["webhook_url"]:
            return []
        event = {
            "id": next(self._ids),
            self.fedapay_event_key: f"transaction.{FEDAPAY_EVENTS[entry['tx']['status']]}",
            "object": "transaction",
            "entity": self._fedapay_view(entry, "currency,customer"),
            "account": {"id": account["id"]},
        }
        notification = _Notification(
            "fedapay",
            account["webhook_url"],
            event,
            secret=account["webhook_secret"],
            forge=bool(self.forge_signatures),
            stale=bool(self.stale_signatures),
        )
        return [notification]

    # -- CinetPay --------------------------------------------------------------------------------

    @staticmethod
    def _cinetpay_error(code: str, message: str, description: str) -> Any:
        return jsonify(code=code, message=message, description=description, api_response_id=secrets.token_hex(8)), 400

    def _cinetpay_auth(self, data: dict[str, Any]) -> Any:
        """None when apikey and site_id are right, else CinetPay's refusal."""
        account = self._cinetpay_accounts.get(str(data.get("site_id", "")))
        if account is None:
            return self._cinetpay_error("613", "ERROR_SITE_ID_NOTVALID", "The site_id is not valid")
        if data.get("apikey") != account["apikey"]:
            return self._cinetpay_error("609", "AUTH_NOT_FOUND", "The apikey is not valid")
        return None

    def _cinetpay_create(self) -> Any:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return self._cinetpay_error("608", "MINIMUM_REQUIRED_FIELDS", "The body must be a JSON object")
        with self._lock:
            refusal = self._cinetpay_auth(data)
            if refusal is not None:
                return refusal
            missing = [name for name in CINETPAY_REQUIRED if data.get(name) in (None, "")]
            if missing:
                return self._cinetpay_error("608", "MINIMUM_REQUIRED_FIELDS", f"Missing fields: {', '.join(missing)}")
            amount = data["amount"]
            if isinstance(amount, str) and amount.isdigit():
                amount = int(amount)
            if not isinstance(amount, int) or isinstance(amount, bool):
                return self._cinetpay_error("608", "MINIMUM_REQUIRED_FIELDS", "The amount must be an integer")
            if amount < 100:
                return self._cinetpay_error("641", "AMOUNT_TOO_LOW", "The minimum amount is 100")
            if amount % 5:
                return self._cinetpay_error("608", "MINIMUM_REQUIRED_FIELDS", "The amount must be a multiple of 5")
            if data["currency"] not in CINETPAY_CURRENCIES:
                return self._cinetpay_error("608", "MINIMUM_REQUIRED_FIELDS", "The currency is not supported")
            if data.get("channels", "ALL") not in CINETPAY_CHANNELS:
                return self._cinetpay_error("608", "MINIMUM_REQUIRED_FIELDS", "The channels value is not valid")
            transaction_id = str(data["transaction_id"])
            if transaction_id in self._cinetpay:
                return self._cinetpay_error("620", "ERROR_DOUBLE_PAYEMNT", "This transaction_id is already used")
            token = secrets.token_hex(20)
            code, message, status = CINETPAY_STATES["pending"]
            self._cinetpay[transaction_id] = {
                "transaction_id": transaction_id,
                "site_id": str(data["site_id"]),
                "payment_token": token,
                "amount": amount,
                "currency": data["currency"],
                "description": str(data["description"]),
                "metadata": data.get("metadata"),
                "notify_url": data["notify_url"],
                "return_url": data["return_url"],
                "channels": data.get("channels", "ALL"),
                "customer_phone_number": data.get("customer_phone_number"),
                "code": code,
                "message": message,
                "status": status,
                "payment_method": None,
                "operator_id": None,
                "payment_date": None,
                "fund_availability_date": None,
                "created_at": _now().strftime("%Y-%m-%d %H:%M:%S"),
                "signature": secrets.token_hex(16),
            }
            return jsonify(
                code="201",
                message="CREATED",
                description="Transaction created with success",
                data={"payment_token": token, "payment_url": self._external(".cinetpay_page", token=token)},
                api_response_id=secrets.token_hex(8),
            )

    def _cinetpay_check(self) -> Any:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return self._cinetpay_error("608", "MINIMUM_REQUIRED_FIELDS", "The body must be a JSON object")
        with self._lock:
            refusal = self._cinetpay_auth(data)
            if refusal is not None:
                return refusal
            payment = self._cinetpay.get(str(data.get("transaction_id", "")))
            if payment is None and data.get("token"):
                payment = next((p for p in self._cinetpay.values() if p["payment_token"] == data["token"]), None)
            if payment is None or payment["site_id"] != str(data["site_id"]):
                return self._cinetpay_error("404", "TRANSACTION_NOT_FOUND", "Transaction not found")
            phone = payment["customer_phone_number"]
            body = {
                "code": payment["code"],
                "message": payment["message"],
                "data": {
                    "amount": str(payment["amount"]),
                    "currency": payment["currency"],
                    "status": payment["status"],
                    "payment_method": payment["payment_method"],
                    "description": payment["description"],
                    "metadata": payment["metadata"],
                    "operator_id": payment["operator_id"],
                    "payment_date": payment["payment_date"],
                    "fund_availability_date": payment["fund_availability_date"],
                    "phone_number": phone,
                    "phone_prefix": "225" if phone else None,
                },
                "api_response_id": secrets.token_hex(8),
            }
            # CinetPay answers failed payments with HTTP 400; the body's code is what counts.
            return jsonify(body), 200 if payment["code"] in ("00", "662") else 400

    def _cinetpay_page(self, token: str) -> Response:
        with self._lock:
            payment = next((p for p in self._cinetpay.values() if p["payment_token"] == token), None)
            payment = copy.deepcopy(payment)
        title = "Paiement CinetPay"
        if payment is None:
            return _page("Lien de paiement inconnu", "Ce lien de paiement n'existe pas.", 404)
        if request.method == "POST":
            try:
                payment = self._settle("cinetpay", payment["transaction_id"], request.form.get("action", ""))
            except Conflict:
                return _page(title, "Cette transaction est déjà traitée.", 409)
            except ValueError:
                return _page(title, "Action inconnue.", 400)
            # CinetPay sends the buyer back with a form POST of transaction_id and token.
            back = Markup(
                '<p>Retour vers le marchand…</p><form method="post" action="{}">'
                '<input type="hidden" name="transaction_id" value="{}">'
                '<input type="hidden" name="token" value="{}">'
                '<button type="submit">Retourner sur le site du marchand</button></form>'
                "<script>document.forms[0].submit()</script>"
            ).format(payment["return_url"], payment["transaction_id"], payment["payment_token"])
            return _page(title, back)
        summary = Markup("<p>{}</p><p><strong>{}</strong></p>").format(
            payment["description"], _money(payment["amount"], payment["currency"])
        )
        if payment["code"] != "662":
            return _page(title, summary + Markup("<p>Cette transaction est déjà traitée.</p>"))
        buttons = [
            ("approve", "Payer"),
            ("decline", "Refuser (solde insuffisant)"),
            ("cancel", "Annuler"),
            ("pending", "Laisser en attente"),
        ]
        return _page(title, summary + _choices(url_for(".cinetpay_page", token=token), buttons))

    def _cinetpay_settle(
        self, ref: str, outcome: str
    ) -> tuple[dict[str, Any], list[_Notification], list[_Notification]]:
        payment = self._cinetpay.get(ref)
        if payment is None:
            raise KeyError(ref)
        if not self._settleable(payment["code"] == "662", payment["code"] == "00", outcome):
            raise Conflict(f"transaction {ref} is {payment['message']}")
        earlier = self._cinetpay_notifications(payment)
        code, message, status = CINETPAY_STATES[outcome]
        payment.update(code=code, message=message, status=status)
        if outcome == "approve":
            now = _now()
            payment.update(
                payment_method="OM",
                operator_id=f"MP{now:%y%m%d}.{now:%H%M}.{secrets.token_hex(3).upper()}",
                payment_date=f"{now:%Y-%m-%d %H:%M:%S}",
                fund_availability_date=f"{now + timedelta(days=1):%Y-%m-%d %H:%M:%S}",
            )
        return copy.deepcopy(payment), earlier, self._cinetpay_notifications(payment)

    def _cinetpay_notifications(self, payment: dict[str, Any]) -> list[_Notification]:
        account = self._cinetpay_accounts[payment["site_id"]]
        phone = payment["customer_phone_number"] or ""
        fields = {
            "cpm_site_id": payment["site_id"],
            "cpm_trans_id": payment["transaction_id"],
            "cpm_trans_date": payment["created_at"],
            "cpm_amount": str(payment["amount"]),
            "cpm_currency": payment["currency"],
            "signature": payment["signature"],
            "payment_method": payment["payment_method"] or "",
            "cel_phone_num": phone,
            "cpm_phone_prefixe": "225" if phone else "",
            "cpm_language": "fr",
            "cpm_version": "V4",
            "cpm_payment_config": "SINGLE",
            "cpm_page_action": "PAYMENT",
            "cpm_custom": str(payment["metadata"] or ""),
            "cpm_designation": payment["description"],
            "cpm_error_message": payment["message"],
        }
        if self.cinetpay_ipn_fields == "no_error_message":
            del fields["cpm_error_message"]
        elif self.cinetpay_ipn_fields == "ids_only":
            fields = {name: fields[name] for name in ("cpm_site_id", "cpm_trans_id")}
        ipn = _Notification(
            "cinetpay", payment["notify_url"], fields, secret=account["secret_key"], forge=bool(self.forge_signatures),
            multipart=self.cinetpay_ipn_encoding == "multipart",
        )
        return [_Notification("cinetpay", payment["notify_url"], None), ipn] if self.cinetpay_ping else [ipn]

    # -- FeexPay ---------------------------------------------------------------------------------

    def _feexpay_account(self) -> tuple[dict[str, Any] | None, Any]:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        account = self._feexpay_accounts.get(token)
        if account is None:
            return None, (jsonify(message="Unauthorized"), 401)
        return account, None

    def _feexpay_push(self, network: str) -> Any:
        with self._lock:
            account, refusal = self._feexpay_account()
            if account is None:
                return refusal
            if network not in FEEXPAY_NETWORKS:
                return jsonify(message="Network Unavailable"), 400
            data = request.get_json(silent=True)
            if not isinstance(data, dict):
                return jsonify(message="Invalid request body"), 400
            if data.get("shop") != account["shop_id"]:
                return jsonify(message="Shop not found"), 400
            dial, currency, flow = FEEXPAY_NETWORKS[network]
            flow = self.feexpay_flow or flow
            amount = data.get("amount")
            if not isinstance(amount, int) or isinstance(amount, bool) or not 100 <= amount <= 2_000_000:
                return jsonify(message=f"Invalid amount: between 100 and 2000000 {currency}"), 400
            phone = str(data.get("phoneNumber", ""))
            national = r"01[0-9]{8}" if dial == "229" else r"[0-9]{8,10}"  # Benin: 10 digits starting 01
            if not re.fullmatch(dial + national, phone):
                return jsonify(message="Invalid phone number"), 400
            description = str(data.get("description") or "")
            if network.startswith("mtn") and not re.fullmatch(r"[a-zA-Z0-9 ]*", description):
                return jsonify(message="Invalid description: letters, digits and spaces only"), 400
            if flow.startswith("otp"):
                otp = data.get("otp")
                if not otp:
                    return jsonify(message="An OTP code is required for this network"), 400
                if self.feexpay_refuse_otp or not FEEXPAY_OTP.fullmatch(str(otp)):
                    return jsonify(message="Invalid OTP code"), 400
            page = flow.endswith("redirect")
            if page and not data.get("return_url"):
                return jsonify(message="The return_url field is required"), 400
            reference = str(uuid.uuid4())
            operator, _, country = network.partition("_")
            self._feexpay[reference] = {
                "reference": reference,
                "order_id": reference,
                "status": "PENDING",
                "amount": amount,
                "phoneNumber": phone,
                "reason": None,
                "callback_info": data.get("callback_info", ""),
                "description": description,
                "first_name": data.get("first_name", ""),
                "last_name": data.get("last_name", ""),
                "email": data.get("email", ""),
                "type": "Paiement",
                "reseau": f"{operator.upper()} {(country or 'bj').upper()}",
                "ref_operator": None,
                "ref_link": "",
                "date": _iso(_now()),
                "shop": account["shop_id"],
                "network": network,
                "currency": currency,  # never in an answer: FeexPay names no currency
                "page": page,
                "return_url": data.get("return_url"),
                "cancel_url": data.get("cancel_url") or data.get("return_url"),
            }
            outcome = {"SUCCESSFUL": "approve", "FAILED": "decline"}.get(self.feexpay_push_outcome or "")
            payment = self._settle("feexpay", reference, outcome) if outcome else self._feexpay[reference]
        answer: dict[str, Any] = {
            "reference": reference,
            "status": payment["status"],
            "message": "Demande de paiement envoyée au téléphone",
            "amount": amount,
            "phoneNumber": phone,
            "description": description,
            "callbackInfo": payment["callback_info"],
        }
        if page:  # payment pages name the payment by order_id alone
            del answer["reference"]
            answer.update(order_id=reference, message="Ouvrez le lien pour payer",
                          payment_url=self._external(".feexpay_page", reference=reference))
        return jsonify(answer), 202

    def _feexpay_status(self, reference: str) -> Any:
        with self._lock:
            if self.feexpay_status_unauthorized:
                return jsonify(message="Unauthorized"), 401
            account, refusal = self._feexpay_account()
            if account is None:
                return refusal
            payment = self._feexpay.get(reference)
            if payment is None or payment["shop"] != account["shop_id"]:
                return jsonify(message="Transaction not found"), 404
            fields = ("reference", "status", "amount", "phoneNumber", "reason", "callback_info", "reseau", "date",
                      "description")
            # The V2 status answer names the operator's reference operator_id (the webhook: ref_operator).
            body = {**{name: payment[name] for name in fields}, "operator_id": payment["ref_operator"]}
            return jsonify({"data": body} if self.feexpay_status_in_data else body)

    def _feexpay_phone_list(self) -> Response:
        with self._lock:
            pending = [p for p in self._feexpay.values() if p["status"] == "PENDING" and not p["page"]]
        items = Markup("").join(
            Markup('<li><a href="{}">{} : {}</a></li>').format(
                url_for(".feexpay_phone", reference=p["reference"]), p["phoneNumber"],
                _money(p["amount"], p["currency"])
            )
            for p in pending
        )
        return _page("Téléphones", Markup("<ul>{}</ul>").format(items) if pending else "Aucune demande en attente.")

    def _feexpay_phone(self, reference: str) -> Response:
        with self._lock:
            payment = copy.deepcopy(self._feexpay.get(reference))
        title = "Votre téléphone"
        if payment is None or payment["page"]:
            return _page(title, "Aucune demande de paiement avec cette référence.", 404)
        if request.method == "POST":
            try:
                payment = self._settle("feexpay", reference, request.form.get("action", ""))
            except Conflict:
                return _page(title, "Cette demande est déjà traitée.", 409)
            except ValueError:
                return _page(title, "Action inconnue.", 400)
            done = "Paiement effectué." if payment["status"] == "SUCCESSFUL" else "Paiement non effectué."
            receipt = Markup("<p>{}</p><p>Référence : {}</p>").format(done, payment["ref_operator"] or "-")
            return _page(title, receipt)
        prompt = Markup("<p>{} ({}) : FeexPay demande {} pour « {} ». Confirmer ?</p>").format(
            payment["phoneNumber"], payment["reseau"], _money(payment["amount"], payment["currency"]),
            payment["description"]
        )
        if payment["status"] != "PENDING":
            return _page(title, prompt + Markup("<p>Cette demande est déjà traitée.</p>"))
        buttons = [("approve", "Valider"), ("decline", "Refuser (solde insuffisant)"), ("cancel", "Annuler")]
        return _page(title, prompt + _choices(url_for(".feexpay_phone", reference=reference), buttons))

    def _feexpay_page(self, reference: str) -> Response:
        """A network's own payment page (Wave, Orange): pay, then back to the merchant's return_url."""
        with self._lock:
            payment = copy.deepcopy(self._feexpay.get(reference))
        title = "Paiement mobile"
        if payment is None or not payment["page"]:
            return _page("Lien de paiement inconnu", "Ce lien de paiement n'existe pas.", 404)
        if request.method == "POST":
            action = request.form.get("action", "")
            try:
                payment = self._settle("feexpay", reference, action)
            except Conflict:
                return _page(title, "Cette transaction est déjà traitée.", 409)
            except ValueError:
                return _page(title, "Action inconnue.", 400)
            return redirect(payment["cancel_url"] if action == "cancel" else payment["return_url"])
        summary = Markup("<p>{} ({})</p><p>{}</p><p><strong>{}</strong></p>").format(
            payment["reseau"], payment["phoneNumber"], payment["description"],
            _money(payment["amount"], payment["currency"])
        )
        if payment["status"] != "PENDING":
            return _page(title, summary + Markup("<p>Cette transaction est déjà traitée.</p>"))
        buttons = [("approve", "Payer"), ("decline", "Refuser le paiement"), ("cancel", "Annuler")]
        return _page(title, summary + _choices(url_for(".feexpay_page", reference=reference), buttons))

    def _feexpay_settle(
        self, ref: str, outcome: str
    ) -> tuple[dict[str, Any], list[_Notification], list[_Notification]]:
        payment = self._feexpay.get(ref)
        if payment is None:
            raise KeyError(ref)
        if not self._settleable(payment["status"] == "PENDING", payment["status"] == "SUCCESSFUL", outcome):
            raise Conflict(f"payment {ref} is {payment['status']}")
        earlier = self._feexpay_notifications(payment)
        status, reason = FEEXPAY_STATES[outcome]
        payment.update(status=status, reason=reason)
        if status == "SUCCESSFUL":
            payment["ref_operator"] = str(secrets.randbelow(10**10)).zfill(10)
        return copy.deepcopy(payment), earlier, self._feexpay_notifications(payment)

    def _feexpay_notifications(self, payment: dict[str, Any]) -> list[_Notification]:
        account = next(a for a in self._feexpay_accounts.values() if a["shop_id"] == payment["shop"])
        if not account["webhook_url"]:
            return []
        fields = ("reference", "order_id", "status", "amount", "callback_info", "last_name", "first_name", "email",
                  "type", "phoneNumber", "date", "reseau", "ref_link", "description", "reason", "ref_operator")
        body = {name: payment[name] if payment[name] is not None else "" for name in fields}
        if self.forge_signatures:  # unsigned, so a forger just claims success
            body.update(status="SUCCESSFUL", reason="")
        return [_Notification("feexpay", account["webhook_url"], body)]

    # -- control ---------------------------------------------------------------------------------

    def _control_settle(self, provider: str, ref: str, action: str) -> Any:
        if action not in OUTCOMES:
            return jsonify(error=f"unknown action {action!r}"), 400
        try:
            self._settle(provider, ref, action)
        except KeyError:
            return jsonify(error=f"no {provider} payment {ref!r}"), 404
        except Conflict as exc:
            return jsonify(error=str(exc)), 409
        return Response(status=204)

    def _control_transactions(self, provider: str) -> Any:
        if provider not in PROVIDERS:
            return jsonify(error=f"unknown provider {provider!r}"), 404
        return jsonify(self.transactions(provider))

    def _control_knobs(self) -> Any:
        if request.method == "POST":
            values = request.get_json(silent=True)
            if not isinstance(values, dict):
                return jsonify(error="send a JSON object of knob values"), 400
            try:
                self.set_knobs(**values)
            except ValueError as exc:
                return jsonify(error=str(exc)), 400
        return jsonify(self.knobs())
