"""FedaPay: create a transaction, then a token whose `url` is the hosted checkout page.

Webhooks are set per account in FedaPay's dashboard (not per payment) and signed with that
webhook's own secret: `X-FEDAPAY-SIGNATURE: t=<unix seconds>,s=<hex HMAC-SHA256 of "t.raw_body">`.
Live and sandbox are separate hosts; the app passes the right `base_url`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests

from portal.payments import phones
from portal.payments.base import (
    CheckoutSession,
    CredentialField,
    InvalidNotification,
    OrderData,
    PaymentCheck,
    PaymentEvent,
    PaymentProvider,
    PaymentStatus,
    ProviderRejected,
    ProviderUnavailable,
    N_,
    digests_equal,
    header,
    name_parts,
    text,
    whole_number,
)

log = logging.getLogger(__name__)

# FedaPay's paid set also holds the refunded states; a refunded ticket is not a sold ticket.
# Both "declined" and "canceled" are final failures (FedaPay's own pages disagree on which is which).
STATUSES: dict[str, PaymentStatus] = {
    "pending": PaymentStatus.PENDING,
    "created": PaymentStatus.PENDING,
    "approved": PaymentStatus.PAID,
    "transferred": PaymentStatus.PAID,
    "declined": PaymentStatus.FAILED,
    "refunded": PaymentStatus.FAILED,
    "approved_partially_refunded": PaymentStatus.FAILED,
    "transferred_partially_refunded": PaymentStatus.FAILED,
    "canceled": PaymentStatus.CANCELLED,
    "expired": PaymentStatus.EXPIRED,
}

# The `last_error_code` of a transaction declined for the wallet's balance (docs/providers.md#fedapay-checkout).
INSUFFICIENT_FUNDS_ERROR = "INSUFFICIENT_FUND_ERROR"

SIGNATURE_HEADER = "X-FEDAPAY-SIGNATURE"
TOLERANCE = 300  # seconds, as in FedaPay's SDKs
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


# Key refusals come as 401 or 403.
_BAD_KEY = N_("la clé secrète n'est pas reconnue. Recopiez-la en entier, sans espace, et vérifiez "
              "l'environnement du compte : une clé sk_sandbox_… ne marche qu'en test, une clé sk_live_… "
              "qu'en production.")


class FedaPay(PaymentProvider):
    name = "fedapay"
    title = "FedaPay"
    api_urls = {"live": "https://api.fedapay.com", "sandbox": "https://sandbox-api.fedapay.com"}
    credential_fields = (
        CredentialField("secret_key", N_("Clé secrète (sk_…)"), secret=True),
        # FedaPay issues it only once our webhook URL is declared, so an account starts without it:
        # until it is set, webhooks are refused and payments are confirmed by polling the API.
        CredentialField("webhook_secret", N_("Secret du webhook (wh_…)"), secret=True, required=False),
        # Not used by the API calls; the guide's buy links carry it, so it identifies the account.
        CredentialField("public_key", N_("Clé publique (pk_…)"), secret=False, required=False),
    )
    public_id_field = "public_key"
    # The hosted page, the Checkout.js CDN it loads and the API it calls, per environment.
    checkout_hosts = {
        "live": ("process.fedapay.com", "checkout.fedapay.com", "api.fedapay.com", "cdn.fedapay.com"),
        "sandbox": ("sandbox-process.fedapay.com", "sandbox-checkout.fedapay.com", "sandbox-api.fedapay.com",
                    "cdn.fedapay.com"),
    }
    # Mobile Money per country (docs/providers.md#wallets-by-country); cards are left out: their bank
    # pages cannot be opened in a hotspot's walled garden.
    wallets = {"bj": ("MTN MoMo", "Moov Money", "Celtiis Cash", "Coris Money"), "ci": ("MTN MoMo",),
               "tg": ("Mixx by Yas", "Flooz"), "sn": ("Free Money",), "ne": ("Airtel Money",)}
    currencies = ("XOF", "GNF")  # docs/providers.md#fedapay-amounts-and-currencies
    notification_headers = (SIGNATURE_HEADER.lower(),)
    guide_buy_path = "/buy-mikhmon"
    guide_public_id_param = "pub_key"
    webhook_setup = N_("À déclarer dans le tableau de bord FedaPay (Webhooks, Nouveau webhook) : FedaPay vous "
                       "donne alors le secret du webhook.")
    environment_hint = N_("Les clés de test (sk_sandbox_…) ne marchent qu'en test, celles de production "
                          "(sk_live_…) qu'en production.")
    refusals = {"401": _BAD_KEY, "403": _BAD_KEY}

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        base_url: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(credentials, base_url=base_url, timeout=timeout, session=session)
        self.clock = clock

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials['secret_key']}"}

    def create_checkout(self, order: OrderData) -> CheckoutSession:
        payload: dict[str, Any] = {
            "description": order.description,
            "amount": order.amount,
            "currency": {"iso": order.currency},
            "callback_url": order.return_url,
            "custom_metadata": {"order_code": order.code},
        }
        created = self._create_transaction(payload, _customer(order))
        ref = text(created.get("id"))
        if ref is None:
            raise self.error(ProviderUnavailable, "transaction created without an id", code="body")
        token = self.request("POST", f"/v1/transactions/{quote(ref, safe='')}/token", headers=self._auth).body
        url = token.get("url")
        if not isinstance(url, str) or not url:
            raise self.error(ProviderUnavailable, "token without a payment url", code="body")
        return CheckoutSession(provider_ref=ref, redirect_url=url)

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str], form: Mapping[str, str] | None = None
    ) -> PaymentEvent:
        self._verify(body, headers)
        event = self.json_notification(body)
        # Webhooks name the event in `name`; the events API calls it `type`: accept both.
        name = event.get("name") or event.get("type")
        if not isinstance(name, str):
            raise self.error(InvalidNotification, "event without a name", code="body")
        event_id = text(event.get("id"))
        if not name.startswith("transaction."):
            return PaymentEvent(provider_ref=None, order_code=None, status_hint=None, event_id=event_id)
        entity = event.get("entity")
        ref = text(entity.get("id")) if isinstance(entity, dict) else None
        if ref is None:
            raise self.error(InvalidNotification, "transaction event without its transaction", code="body")
        # The entity's status is the most precise; the event name says it too ("transaction.approved").
        status = STATUSES.get(text(entity.get("status")) or "") or STATUSES.get(name.removeprefix("transaction."))
        return PaymentEvent(
            provider_ref=ref, order_code=_order_code(entity), status_hint=status, event_id=event_id
        )

    def fetch_status(self, provider_ref: str, order_code: str, network: str | None = None) -> PaymentCheck:
        answer = self.request(
            "GET",
            f"/v1/transactions/{quote(provider_ref, safe='')}",
            params={"include": "currency"},
            headers=self._auth,
        )
        tx = self._transaction(answer.body)
        owner = _order_code(tx)
        if owner is not None and owner != order_code:
            raise self.error(
                ProviderRejected, f"transaction {provider_ref} belongs to another order", code="order"
            )
        currency = tx.get("currency")
        method = tx.get("payment_method")
        return PaymentCheck(
            provider_ref=provider_ref,
            status=STATUSES.get(text(tx.get("status")) or "", PaymentStatus.PENDING),  # unknown: keep polling
            amount=whole_number(tx.get("amount")),
            currency=text(currency.get("iso")) if isinstance(currency, dict) else None,
            payer_reference=text(tx.get("reference")),
            payer_phone=text(method.get("number")) if isinstance(method, dict) else None,
            insufficient_funds=tx.get("last_error_code") == INSUFFICIENT_FUNDS_ERROR,
        )

    def check_credentials(self) -> None:
        self.request("GET", "/v1/transactions", params={"per_page": "1"}, headers=self._auth)

    def provider_message(self, body: Mapping[str, Any]) -> str | None:
        """FedaPay's `message`, followed by its per-field validation errors."""
        message = super().provider_message(body)
        errors = body.get("errors")
        if isinstance(errors, dict) and errors:
            details = "; ".join(
                f"{field}: {', '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                for field, msgs in errors.items()
            )
            return f"{message} ({details})" if message else details
        return message

    def _create_transaction(self, payload: dict[str, Any], customer: dict[str, Any]) -> Mapping[str, Any]:
        """Create the transaction with what the buyer gave; a refused customer is tried again smaller.

        FedaPay's pages disagree on what a customer needs (an email, or a phone alone), so when it
        refuses the customer Kiosque tries once without the phone, then once without a customer,
        and never invents an email (docs/providers.md#fedapay-customer).
        """
        smaller = [customer, {k: v for k, v in customer.items() if k != "phone_number"}]
        for tried in [c for i, c in enumerate(smaller) if c and c not in smaller[:i]]:
            answer = self.request("POST", "/v1/transactions", json={**payload, "customer": tried},
                                  headers=self._auth, reject_4xx=False)
            if answer.status < 400:
                return self._transaction(answer.body)
            if not _refuses_customer(answer.body):
                raise self.refusal(answer.status, answer.body)
            log.info("fedapay refused a customer with %s: trying again with less", ", ".join(sorted(tried)))
        return self._transaction(self.request("POST", "/v1/transactions", json=payload, headers=self._auth).body)

    def _transaction(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Unwrap FedaPay's `{"v1/transaction": {...}}`."""
        tx = body.get("v1/transaction")
        if not isinstance(tx, dict):
            raise self.error(ProviderUnavailable, "answer without a transaction", code="body")
        return tx

    def _verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Check the signature over the raw body, then the timestamp (in that order, as the SDKs do)."""
        if not self.credentials["webhook_secret"]:
            raise self.error(InvalidNotification, "no webhook secret configured yet", code="signature")
        value = header(headers, SIGNATURE_HEADER)
        if not value:
            raise self.error(InvalidNotification, f"missing {SIGNATURE_HEADER} header", code="signature")
        timestamp, signatures = None, []
        for item in value.split(","):
            key, _, val = item.strip().partition("=")
            if key == "t":
                timestamp = val
            elif key == "s":
                signatures.append(val)
        if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
            raise self.error(
                InvalidNotification, "Unable to extract timestamp and signatures from header", code="signature"
            )
        if not signatures:
            raise self.error(InvalidNotification, "No signatures found with expected scheme", code="signature")
        secret = self.credentials["webhook_secret"].encode()
        expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not any(digests_equal(expected, s) for s in signatures):
            raise self.error(
                InvalidNotification,
                "No signatures found matching the expected signature for payload",
                code="signature",
            )
        if abs(self.clock() - int(timestamp)) > TOLERANCE:
            raise self.error(InvalidNotification, "Timestamp outside the tolerance zone", code="timestamp")


def _order_code(tx: Mapping[str, Any]) -> str | None:
    metadata = tx.get("custom_metadata")
    return text(metadata.get("order_code")) if isinstance(metadata, dict) else None


def _customer(order: OrderData) -> dict[str, Any]:
    """The inline customer FedaPay pre-fills its page with; the phone only when it is an international number."""
    customer: dict[str, Any] = {}
    first, last = name_parts(order.customer_name)
    if first:
        customer["firstname"] = first
        customer["lastname"] = last or first
    if order.email:
        customer["email"] = order.email
    try:
        number = phones.normalise(order.phone or "", "")  # international numbers only
    except phones.InvalidPhone:
        return customer
    customer["phone_number"] = {"number": number, "country": phones.country_of(number)}
    return customer


_CUSTOMER_WORDS = re.compile(r"customer|email|e-mail|phone", re.IGNORECASE)


def _refuses_customer(body: Mapping[str, Any]) -> bool:
    """Whether a refusal is about the customer: an error key under `customer`, or a message naming it."""
    errors = body.get("errors")
    if isinstance(errors, dict) and any(isinstance(k, str) and k.startswith("customer") for k in errors):
        return True
    message = body.get("message")
    return isinstance(message, str) and _CUSTOMER_WORDS.search(message) is not None
