"""What every payment adapter shares: the data it exchanges with the app, its errors, its HTTP
helper, and the facts each one declares about its provider.

Adapters take configuration and plain dataclasses and give dataclasses back; they never import
Flask or the database. Everything the app needs to know about a provider (its name, its
credentials, its hosts, the networks it charges, what to tell owners and buyers) is a class
attribute of its adapter, so that the pages, the services and the router kit ask the adapter
instead of naming providers. Notifications (webhooks, IPNs) are hints: the app confirms every
payment with `fetch_status`, and compares amount and currency with its own order.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import requests
from urllib3.exceptions import NewConnectionError

log = logging.getLogger(__name__)


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True)
class OrderData:
    """The order as the app hands it to an adapter (never a database model)."""

    code: str  # our order code, [A-Za-z0-9]; echoed by every provider
    amount: int  # whole currency units (XOF has no minor unit)
    currency: str
    description: str
    return_url: str  # where the buyer's browser comes back
    notify_url: str  # our webhook URL, for providers that take one per payment
    phone: str | None = None  # E.164 ("+2290197000000"), see portal/payments/phones.py
    network: str | None = None
    email: str | None = None
    customer_name: str | None = None
    otp: str | None = None  # the payment code some networks want with the request; never stored


@dataclass(frozen=True)
class CheckoutSession:
    provider_ref: str  # the provider's transaction id, or our code where the provider keys by it
    redirect_url: str | None  # hosted checkout page; None when the buyer confirms on the phone


@dataclass(frozen=True)
class PaymentEvent:
    """A verified notification. Only a hint: the app re-checks with `fetch_status`."""

    provider_ref: str | None
    order_code: str | None
    status_hint: PaymentStatus | None
    event_id: str | None


@dataclass(frozen=True)
class PaymentCheck:
    """The provider's authoritative answer about one payment."""

    provider_ref: str
    status: PaymentStatus
    amount: int | None
    currency: str | None  # None when the provider does not report it
    payer_reference: str | None  # what the payer sees (receipt, operator SMS), for code retrieval
    payer_phone: str | None
    insufficient_funds: bool = False  # a failure the provider put down to the wallet's balance


class PaymentError(Exception):
    """A payment call failed. `str()` never contains credentials: adapters scrub them first."""

    def __init__(
        self, message: str, *, provider: str, code: str | None = None, provider_message: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.code = code
        self.provider_message = provider_message

    def __str__(self) -> str:
        return f"{self.message}: {self.provider_message}" if self.provider_message else self.message


class ProviderUnavailable(PaymentError):
    """Timeout, connection error, 5xx or an unreadable answer: try again later.

    `sent` is False only when no connection could be opened: the request cannot have reached the
    provider. Otherwise it may have been acted on although its answer was lost.
    """

    def __init__(self, message: str, *, sent: bool = True, **details: Any) -> None:
        super().__init__(message, **details)
        self.sent = sent


class ProviderRejected(PaymentError):
    """The provider (or a local check of its rules) refused: bad keys, invalid amount, unknown payment.

    `code` is the provider's (an HTTP status, a provider code), or names the buyer's input at
    fault: "phone", "network", "otp".
    """


class KeysRefused(ProviderRejected):
    """The provider refused the account's keys: nothing is wrong with the payment, so ask again once fixed."""


class InvalidNotification(PaymentError):
    """Bad or missing signature, stale timestamp or malformed body: the app answers 4xx."""


E = TypeVar("E", bound=PaymentError)


def N_(message: str) -> str:
    """Mark a text for translation without translating it: the app translates it where it shows it."""
    return message


@dataclass(frozen=True)
class CredentialField:
    """One field of the owner's payment-account form."""

    name: str
    label: str  # French, marked with N_
    secret: bool
    required: bool = True


@dataclass(frozen=True)
class Network:
    """A Mobile Money network a push provider charges, as buyers know it, and how its payments go.

    Whether a payment is a push to the phone or a page to open is the provider's answer to each
    request, not a fact of the network (docs/providers.md#feexpay-flows); the network only says
    what must be ready for either.
    """

    code: str  # the provider's name for it, in its API paths
    country: str  # ISO 3166 alpha-2, lower case: the payer's number must be of this country
    wallet: str  # the wallet's name, as buyers know it
    currency: str = "XOF"  # what its amounts are in; a plan in another currency cannot be paid on it
    # The buyer first gets a payment code from the operator (by USSD) and types it; it goes with the request.
    otp: bool = False
    # How to get that code, for buyers (French, N_; may hold %(amount)s). USSD codes in it are unverified.
    otp_hint: str = ""
    # The answer may carry a payment page to open (Wave, Orange...): the request says where to come back.
    may_redirect: bool = False
    checkout_hosts: tuple[str, ...] = ()  # the hosts that page is known to use (the hotspot's walled garden)


_DIGITS = re.compile(r"[0-9]{1,15}")


def wallets_by_country(networks: Mapping[str, Network]) -> dict[str, tuple[str, ...]]:
    """The wallets a push provider's networks take, by country."""
    found: dict[str, tuple[str, ...]] = {}
    for network in networks.values():
        found[network.country] = tuple(dict.fromkeys((*found.get(network.country, ()), network.wallet)))
    return found


def name_parts(name: str | None) -> tuple[str, str]:
    """First name and the rest, as the providers' customer fields want them ("" when unknown)."""
    first, _, rest = (name or "").strip().partition(" ")
    return first, rest.strip()


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts as well as werkzeug Headers."""
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value if isinstance(value, str) else None
    return None


def text(value: Any) -> str | None:
    """A JSON scalar as text (ids arrive as numbers or strings); None for anything else.

    Text holding a NUL is none either: no reference has one, and databases refuse it.
    """
    if isinstance(value, str):
        return value if value and "\x00" not in value else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def whole_number(value: Any) -> int | None:
    """An amount sent as a JSON number or a digit string ("100"); None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def digests_equal(expected: str, given: str) -> bool:
    """Constant-time comparison of a hex digest with whatever text the sender put in its place."""
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8", "replace"))


@dataclass(frozen=True)
class Answer:
    """A provider's HTTP answer that carried a JSON object."""

    status: int
    body: dict[str, Any]


class PaymentProvider(ABC):
    """One payment provider's API, bound to one owner's credentials.

    The class attributes are the provider's facts; texts for people are French, marked with N_.
    """

    name: ClassVar[str]  # the registry key, in webhook URLs and in the database
    title: ClassVar[str]  # the brand, as owners know it
    # Environment -> the API's base URL; the first is the default. FedaPay has a separate test host.
    api_urls: ClassVar[Mapping[str, str]]
    credential_fields: ClassVar[tuple[CredentialField, ...]]
    # The non-secret credential that the buy links of the guide Kiosque replaces carry.
    public_id_field: ClassVar[str]
    # Environment -> the hosts a buyer's browser must reach to pay (the hotspot's walled garden).
    checkout_hosts: ClassVar[Mapping[str, tuple[str, ...]]]
    # Push providers charge a phone on a network the buyer picks; hosted pages need neither.
    needs_phone: ClassVar[bool] = False
    # Whether a checkout whose answer never came may still reach the buyer (a push rings the phone
    # anyway): such an order waits as "unknown" instead of failing. A hosted page nobody received
    # cannot be paid.
    unanswered_checkout_may_charge: ClassVar[bool] = False
    networks: ClassVar[Mapping[str, Network]] = {}
    currencies: ClassVar[tuple[str, ...]]  # ISO 4217 codes it charges in; the first is its usual one
    # Country (ISO 3166 alpha-2, lower case) -> what buyers there pay with, by the names they know.
    wallets: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    # Headers worth keeping with a stored notification (its signature, besides the usual ones).
    notification_headers: ClassVar[tuple[str, ...]] = ()
    # The guide Kiosque replaces sent buyers to this path, the account's public id in this parameter.
    guide_buy_path: ClassVar[str | None] = None
    guide_public_id_param: ClassVar[str] = ""
    webhook_setup: ClassVar[str]  # where the owner declares Kiosque's webhook URL (N_)
    environment_hint: ClassVar[str] = ""  # how to tell test keys from live ones (N_)
    # The provider's common refusals of keys, by error code, as owners can act on them (N_).
    refusals: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def api_url_setting(cls, environment: str) -> str:
        """The setting holding the API's base URL for `environment`: FEDAPAY_API_URL, FEDAPAY_SANDBOX_API_URL."""
        default = next(iter(cls.api_urls))
        middle = "" if environment == default else f"_{environment.upper()}"
        return f"{cls.name.upper()}{middle}_API_URL"

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        base_url: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        missing = [f.label for f in self.credential_fields if f.required and not credentials.get(f.name)]
        if missing:
            raise ProviderRejected(
                f"{self.title}: missing credentials: {', '.join(missing)}", provider=self.name, code="credentials"
            )
        self.credentials = {f.name: credentials.get(f.name, "") for f in self.credential_fields}
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"

    @abstractmethod
    def create_checkout(self, order: OrderData) -> CheckoutSession:
        """Start a payment; the app sends the buyer to `redirect_url` when there is one."""

    @abstractmethod
    def parse_notification(
        self, body: bytes, headers: Mapping[str, str], form: Mapping[str, str] | None = None
    ) -> PaymentEvent:
        """Verify a notification over the raw request, then read it; raise InvalidNotification."""

    @abstractmethod
    def fetch_status(self, provider_ref: str, order_code: str, network: str | None = None) -> PaymentCheck:
        """Ask the provider where the order's payment stands (`network`: the one it was charged on, if any).

        Raise ProviderRejected when the provider shows the payment belongs to another order.
        """

    @abstractmethod
    def check_credentials(self) -> None:
        """Make a harmless authenticated call; raise ProviderRejected when the keys are refused."""

    def notification_is_signed(self) -> bool:
        """Whether `parse_notification` proves the notification came from the provider."""
        return True

    # -- helpers for the adapters -------------------------------------------------------------

    def provider_message(self, body: Mapping[str, Any]) -> str | None:
        """The provider's own explanation in an error body; adapters override for their shape."""
        said = body.get("message")
        return said if isinstance(said, str) and said else None

    def json_notification(self, body: bytes) -> dict[str, Any]:
        """A notification body that must be a JSON object; anything else is InvalidNotification."""
        try:
            event = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested arrays
            raise self.error(InvalidNotification, "body is not JSON", code="body") from None
        if not isinstance(event, dict):
            raise self.error(InvalidNotification, "body is not a JSON object", code="body")
        return event

    def scrub(self, text: str) -> str:
        """Remove every secret credential from a text that may reach logs or the owner's screen."""
        for f in self.credential_fields:
            secret = self.credentials[f.name]
            if f.secret and secret:
                text = text.replace(secret, "***")
        return text

    def error(
        self, cls: type[E], message: str, *, code: str | None = None, provider_message: str | None = None,
        **details: Any,
    ) -> E:
        """Build a typed error with credentials scrubbed from both texts."""
        return cls(
            self.scrub(f"{self.title}: {message}"),
            provider=self.name,
            code=code,
            provider_message=self.scrub(provider_message) if provider_message else None,
            **details,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        reject_4xx: bool = True,
    ) -> Answer:
        """Make one API call with the timeout and turn failures into typed errors.

        Transport errors, 5xx and unreadable 2xx answers raise ProviderUnavailable; 4xx raise
        ProviderRejected with the provider's message unless `reject_4xx` is False (CinetPay reports
        payment outcomes with HTTP 400, so its adapter reads the body's code itself).
        """
        url = self.base_url + path
        try:
            response = self.session.request(
                method, url, json=json, params=params, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            log.warning("%s %s %s failed: %s", self.name, method, path, type(exc).__name__)
            raise self.error(ProviderUnavailable, f"no answer ({type(exc).__name__})", code="network",
                             sent=not _never_sent(exc)) from None
        status = response.status_code
        log.debug("%s %s %s -> %s", self.name, method, path, status)
        try:
            body = response.json()
        except ValueError:  # includes decoding errors
            body = None
        if status >= 500:
            said = self.provider_message(body) if isinstance(body, dict) else None
            raise self.error(ProviderUnavailable, f"server error (HTTP {status})", code=str(status),
                             provider_message=said)
        if status >= 400 and (reject_4xx or not isinstance(body, dict)):
            raise self.refusal(status, body if isinstance(body, dict) else {})
        if not isinstance(body, dict):
            raise self.error(ProviderUnavailable, f"unreadable answer (HTTP {status})", code="body")
        return Answer(status, body)

    def refusal(self, status: int, body: Mapping[str, Any]) -> ProviderRejected:
        """The error for a 4xx answer: KeysRefused for 401 and 403, ProviderRejected otherwise."""
        cls = KeysRefused if status in (401, 403) else ProviderRejected
        return self.error(cls, f"request refused (HTTP {status})", code=str(status),
                          provider_message=self.provider_message(body))


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request failed before a connection opened (refused, no route, unknown host, connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)
