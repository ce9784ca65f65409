"""CinetPay Checkout v2: `/v2/payment` gives a hosted `payment_url`, `/v2/payment/check` the outcome.

CinetPay keys payments by our own `transaction_id` (the order code), so that is the provider
reference. `apikey` and `site_id` travel in every JSON body. The IPN is a form POST whose `x-token`
header is an HMAC-SHA256, keyed with the account's secret key, over sixteen form fields run
together. CinetPay reports outcomes in the body's `code`, sometimes with HTTP 400.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from portal.payments.base import (
    CheckoutSession,
    CredentialField,
    InvalidNotification,
    KeysRefused,
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
    text,
    whole_number,
)

# The IPN fields in the order CinetPay concatenates them for `x-token`; absent ones count as "".
SIGNED_FIELDS = (
    "cpm_site_id", "cpm_trans_id", "cpm_trans_date", "cpm_amount", "cpm_currency", "signature",
    "payment_method", "cel_phone_num", "cpm_phone_prefixe", "cpm_language", "cpm_version",
    "cpm_payment_config", "cpm_page_action", "cpm_custom", "cpm_designation", "cpm_error_message",
)

CURRENCIES = ("XOF", "XAF", "CDF", "GNF", "USD")
MIN_AMOUNT = 100

PENDING_CODES = {"623", "662", "663", "664"}
FAILED_CODES = {"600", "602", "604", "606"}
INSUFFICIENT_BALANCE_CODE = "602"
CANCELLED_CODE = "627"
AUTH_CODES = {"609", "613", "624"}  # bad apikey, bad site_id, unknown error (bad keys among others)
UNAVAILABLE_CODE = "603"

# `data.status` when `code` alone does not say; CANCELED/CANCELLED appear only in third-party code.
DATA_STATUSES: dict[str, PaymentStatus] = {
    "ACCEPTED": PaymentStatus.PAID,
    "REFUSED": PaymentStatus.FAILED,
    "WAITING_FOR_CUSTOMER": PaymentStatus.PENDING,
    "CANCELED": PaymentStatus.CANCELLED,
    "CANCELLED": PaymentStatus.CANCELLED,
}

# CinetPay asks to keep these out of descriptions.
_UNSAFE_DESCRIPTION = re.compile(r"[#/$_&]")


def amount_problem(amount: int, currency: str) -> str | None:
    """Why CinetPay would refuse this amount, or None when it is acceptable."""
    if currency not in CURRENCIES:
        return f"currency {currency} is not accepted (use one of {', '.join(CURRENCIES)})"
    if amount < MIN_AMOUNT:
        return f"amount {amount} {currency} is below the minimum of {MIN_AMOUNT}"
    if amount % 5:
        return f"amount {amount} {currency} is not a multiple of 5"
    return None


class CinetPay(PaymentProvider):
    name = "cinetpay"
    title = "CinetPay"
    api_urls = {"live": "https://api-checkout.cinetpay.com"}
    credential_fields = (
        CredentialField("apikey", N_("Clé API (apikey)"), secret=True),
        CredentialField("site_id", N_("Identifiant du site (site_id)"), secret=False),
        CredentialField("secret_key", N_("Clé secrète (vérifie les notifications)"), secret=True),
    )
    public_id_field = "site_id"
    # The hosted page and what it loads; the guide's field-tested list adds the last two.
    checkout_hosts = {"live": ("checkout.cinetpay.com", "robot-checkout.cinetpay.com", "cdn.cinetpay.com",
                               "cdn.socket.io")}
    # docs/providers.md#wallets-by-country; Benin only in the newer API's SDK (low confidence).
    wallets = {"ci": ("Orange Money", "MTN MoMo", "Moov Money", "Wave"),
               "sn": ("Orange Money", "Free Money", "E-Money", "Wave"), "bf": ("Orange Money", "Moov Money"),
               "ml": ("Orange Money", "Moov Money"), "tg": ("T-Money", "Flooz"), "bj": ("MTN MoMo", "Moov Money")}
    currencies = CURRENCIES
    notification_headers = ("x-token",)
    guide_buy_path = "/buy-mikhmon-cinetpay"
    guide_public_id_param = "siteid"
    webhook_setup = N_("Kiosque la transmet à CinetPay avec chaque paiement : rien à déclarer.")
    refusals = {
        "609": N_("la clé API (apikey) n'est pas reconnue. Recopiez-la depuis votre espace marchand, sans espace."),
        "613": N_("l'identifiant du site (site_id) ne va pas avec cette clé API : prenez les deux dans le même "
                  "compte marchand."),
        "624": N_("la clé API ou l'identifiant du site est refusé : prenez les deux dans le même compte marchand, "
                  "sans espace."),
    }

    @property
    def _account(self) -> dict[str, str]:
        return {"apikey": self.credentials["apikey"], "site_id": self.credentials["site_id"]}

    def create_checkout(self, order: OrderData) -> CheckoutSession:
        problem = amount_problem(order.amount, order.currency)
        if problem:
            raise self.error(ProviderRejected, problem, code="amount")
        payload: dict[str, Any] = {
            **self._account,
            "transaction_id": order.code,
            "amount": order.amount,
            "currency": order.currency,
            "description": _UNSAFE_DESCRIPTION.sub(" ", order.description),
            "notify_url": order.notify_url,
            "return_url": order.return_url,
            "channels": "MOBILE_MONEY",  # card payments go to bank pages the walled garden blocks
            "lang": "fr",
            "metadata": order.code,
        }
        optional = {
            "customer_name": order.customer_name,
            "customer_email": order.email,
            "customer_phone_number": order.phone,
        }
        payload.update({key: value for key, value in optional.items() if value})
        body = self.request("POST", "/v2/payment", json=payload, reject_4xx=False).body
        code = text(body.get("code"))
        if code != "201":
            raise self._refusal(code, body)
        data = body.get("data")
        url = data.get("payment_url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise self.error(ProviderUnavailable, "payment created without a payment_url", code="body")
        return CheckoutSession(provider_ref=order.code, redirect_url=url)

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str], form: Mapping[str, str] | None = None
    ) -> PaymentEvent:
        fields = form if form is not None else self._form(body)
        token = header(headers, "x-token")
        if not token:
            raise self.error(InvalidNotification, "missing x-token header", code="signature")
        values = [fields.get(name, "") for name in SIGNED_FIELDS]
        if not all(isinstance(value, str) for value in values):
            raise self.error(InvalidNotification, "form fields are not text", code="body")
        message = "".join(values).encode("utf-8", "surrogatepass")
        expected = hmac.new(self.credentials["secret_key"].encode(), message, hashlib.sha256).hexdigest()
        if not digests_equal(expected, token):
            raise self.error(InvalidNotification, "x-token does not match the notification", code="signature")
        trans_id = text(fields.get("cpm_trans_id"))
        if not trans_id:
            raise self.error(InvalidNotification, "notification without cpm_trans_id", code="body")
        if fields.get("cpm_site_id") != self.credentials["site_id"]:
            raise self.error(InvalidNotification, "notification for another site_id", code="site")
        # The IPN carries no status: it only says "check this transaction".
        return PaymentEvent(provider_ref=trans_id, order_code=trans_id, status_hint=None, event_id=None)

    def fetch_status(self, provider_ref: str, order_code: str, network: str | None = None) -> PaymentCheck:
        payload = {**self._account, "transaction_id": provider_ref}
        body = self.request("POST", "/v2/payment/check", json=payload, reject_4xx=False).body
        code = text(body.get("code"))
        data = body.get("data")
        data = data if isinstance(data, dict) else {}
        status = _status(code, text(data.get("status")))
        if status is None:
            raise self._refusal(code, body)
        prefix, number = text(data.get("phone_prefix")), text(data.get("phone_number"))
        return PaymentCheck(
            provider_ref=provider_ref,
            status=status,
            amount=whole_number(data.get("amount")),  # a string in CinetPay's answers
            currency=text(data.get("currency")),
            payer_reference=text(data.get("operator_id")),
            payer_phone=f"{prefix or ''}{number}" if number else None,
            insufficient_funds=code == INSUFFICIENT_BALANCE_CODE,
        )

    def check_credentials(self) -> None:
        """Check a transaction that does not exist: only refused keys make this fail."""
        payload = {**self._account, "transaction_id": "kiosque-credentials-check"}
        body = self.request("POST", "/v2/payment/check", json=payload, reject_4xx=False).body
        code = text(body.get("code"))
        if code in AUTH_CODES:
            raise self._refusal(code, body)

    def provider_message(self, body: Mapping[str, Any]) -> str | None:
        """CinetPay's `message` (a constant like AUTH_NOT_FOUND) with its `description`."""
        parts = [value for key in ("message", "description") if isinstance(value := body.get(key), str) and value]
        return ": ".join(parts) or None

    def _refusal(self, code: str | None, body: Mapping[str, Any]) -> ProviderRejected | ProviderUnavailable:
        """The error for a non-success code; 603 SERVICE_UNAVAILABLE is an outage, not a refusal."""
        said = self.provider_message(body)
        if code == UNAVAILABLE_CODE:
            return self.error(ProviderUnavailable, "service unavailable", code=code, provider_message=said)
        cls = KeysRefused if code in AUTH_CODES else ProviderRejected
        return self.error(cls, f"request refused (code {code})", code=code, provider_message=said)

    def _form(self, body: bytes) -> dict[str, str]:
        """Decode an urlencoded body; the first value wins for a repeated field, as in werkzeug."""
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except ValueError:  # includes UnicodeDecodeError
            raise self.error(InvalidNotification, "body is not a form", code="body") from None
        fields: dict[str, str] = {}
        for key, value in pairs:
            fields.setdefault(key, value)
        return fields


def _status(code: str | None, data_status: str | None) -> PaymentStatus | None:
    """Map CinetPay's code and data.status; None means an error, not a payment state."""
    if code == "00":
        return DATA_STATUSES.get(data_status or "", PaymentStatus.PENDING)
    if code in PENDING_CODES:
        return PaymentStatus.PENDING
    if code == CANCELLED_CODE:
        return PaymentStatus.CANCELLED
    if code in FAILED_CODES:
        return PaymentStatus.FAILED
    return DATA_STATUSES.get(data_status or "")
