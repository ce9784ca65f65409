"""FeexPay: a "request to pay" push to the buyer's phone, then a status endpoint.

There is no hosted page: the operator asks the buyer to confirm on the phone, so the app needs
the phone number and network first. FeexPay's webhook (a URL set in its dashboard) is unsigned,
so a notification is only a pointer to a reference whose status the app fetches.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from portal.payments.base import (
    DIAL_CODES,
    CheckoutSession,
    CredentialField,
    InvalidNotification,
    N_,
    Network,
    OrderData,
    PaymentCheck,
    PaymentEvent,
    PaymentProvider,
    PaymentStatus,
    ProviderRejected,
    ProviderUnavailable,
    name_parts,
    phone_digits,
    text,
    wallets_by_country,
    whole_number,
)

# The networks by their path segment ("celtiis_bj", not "celtiis"), with the wallet buyers know.
NETWORKS: dict[str, Network] = {n.code: n for n in (
    Network("mtn", "bj", "MTN MoMo"), Network("moov", "bj", "Moov Money"),
    Network("celtiis_bj", "bj", "Celtiis Cash"), Network("coris", "bj", "Coris Money"),
    Network("togocom_tg", "tg", "T-Money"), Network("moov_tg", "tg", "Flooz"),
    Network("mtn_ci", "ci", "MTN MoMo"), Network("moov_ci", "ci", "Moov Money"),
    Network("orange_ci", "ci", "Orange Money"), Network("wave_ci", "ci", "Wave"),
    Network("orange_bf", "bf", "Orange Money"), Network("moov_bf", "bf", "Moov Money"),
    Network("orange_sn", "sn", "Orange Money"), Network("free_sn", "sn", "Free Money"),
    Network("wave_sn", "sn", "Wave"),
    Network("mtn_cg", "cg", "MTN MoMo", currency="XAF"),
)}

# SUCCESSFUL/PENDING/FAILED are the documented values; the others appear in SDK types and integrations.
STATUSES: dict[str, PaymentStatus] = {
    "SUCCESSFUL": PaymentStatus.PAID,
    "SUCCESS": PaymentStatus.PAID,
    "PENDING": PaymentStatus.PENDING,
    "IN PENDING STATE": PaymentStatus.PENDING,
    "FAILED": PaymentStatus.FAILED,
    "INSUFFICIENT_FUNDS": PaymentStatus.FAILED,
    "TIMEOUT": PaymentStatus.EXPIRED,
    "CANCELLED": PaymentStatus.CANCELLED,
    "CANCELED": PaymentStatus.CANCELLED,
}

# What a failure caused by the wallet's balance says: FeexPay's own status, or the operator's
# `reason` (MTN's words also cover an account's limits; buyers hear "solde insuffisant" first).
INSUFFICIENT_FUNDS = {"INSUFFICIENT_FUNDS", "LOW_BALANCE_OR_PAYEE_LIMIT_REACHED_OR_NOT_ALLOWED"}

# Only letters, digits and spaces: MTN refuses anything else.
_NOT_ALLOWED_IN_DESCRIPTION = re.compile(r"[^a-zA-Z0-9 ]")


def international_phone(phone: str, network: str) -> str:
    """The digits FeexPay wants: country code included, e.g. "01 97 00 00 00" on mtn -> "2290197000000"."""
    digits = phone_digits(phone)
    # National numbers have at most 10 digits; anything longer already starts with its country code.
    return DIAL_CODES[NETWORKS[network].country] + digits if len(digits) <= 10 else digits


def _description(value: str) -> str:
    """Strip accents first so "journée" becomes "journee" rather than "journe"."""
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return " ".join(_NOT_ALLOWED_IN_DESCRIPTION.sub(" ", plain).split())


class FeexPay(PaymentProvider):
    name = "feexpay"
    title = "FeexPay"
    api_urls = {"live": "https://api.feexpay.me"}
    credential_fields = (
        CredentialField("shop_id", N_("Identifiant de la boutique (shop)"), secret=False),
        CredentialField("token", N_("Jeton API (fp_…)"), secret=True),
    )
    public_id_field = "shop_id"
    # The buyer confirms on the phone and never leaves Kiosque's pages: nothing to open in the
    # walled garden (FeexPay's own widget would need api.feexpay.me and api.ipify.org).
    checkout_hosts = {"live": ()}
    needs_phone = True
    networks = NETWORKS
    wallets = wallets_by_country(NETWORKS)
    guide_buy_path = "/buy-mikhmon-feexpay"
    guide_public_id_param = "siteid"
    webhook_setup = N_("À déclarer dans le tableau de bord FeexPay (menu Webhook).")

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials['token']}"}

    def create_checkout(self, order: OrderData) -> CheckoutSession:
        if not order.phone or not phone_digits(order.phone):
            raise self.error(ProviderRejected, "a phone number is needed for the payment request", code="phone")
        if order.network not in NETWORKS:
            raise self.error(ProviderRejected, f"unknown network {order.network!r}", code="network")
        payload: dict[str, Any] = {
            "shop": self.credentials["shop_id"],
            "amount": order.amount,
            "phoneNumber": international_phone(order.phone, order.network),
            "description": _description(order.description),
            "callback_info": order.code,
        }
        first, last = name_parts(order.customer_name)
        if first:
            payload.update(first_name=first, last_name=last)
        if order.email:
            payload["email"] = order.email
        path = f"/api/transactions/public/requesttopay/{order.network}"
        body = self.request("POST", path, json=payload, headers=self._auth).body
        ref = text(body.get("reference"))
        if ref is None:
            raise self.error(ProviderUnavailable, "payment request without a reference", code="body")
        # Even an immediate FAILED or SUCCESSFUL is only confirmed by the status call.
        return CheckoutSession(provider_ref=ref, redirect_url=None)

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str], form: Mapping[str, str] | None = None
    ) -> PaymentEvent:
        event = self.json_notification(body)
        ref = text(event.get("reference")) or text(event.get("order_id"))
        if ref is None:
            raise self.error(InvalidNotification, "notification without a reference", code="body")
        status = text(event.get("status"))
        return PaymentEvent(
            provider_ref=ref,
            order_code=text(event.get("callback_info")),
            status_hint=STATUSES.get(status.upper()) if status else None,
            event_id=None,
        )

    def notification_is_signed(self) -> bool:
        return False

    def fetch_status(self, provider_ref: str, order_code: str) -> PaymentCheck:
        path = f"/api/transactions/public/single/status/{quote(provider_ref, safe='')}"
        body = self.request("GET", path, headers=self._auth).body
        # Some integrations find the payment under `data`.
        payment = body["data"] if isinstance(body.get("data"), dict) else body
        status = text(payment.get("status"))
        reason = text(payment.get("reason"))
        return PaymentCheck(
            provider_ref=provider_ref,
            status=STATUSES.get(status.upper(), PaymentStatus.PENDING) if status else PaymentStatus.PENDING,
            amount=whole_number(payment.get("amount")),
            currency=text(payment.get("currency")) or "XOF",  # FeexPay's amounts are XOF; it rarely says so
            payer_reference=text(payment.get("ref_operator")),
            payer_phone=text(payment.get("phoneNumber")),
            insufficient_funds=bool({(status or "").upper(), (reason or "").upper()} & INSUFFICIENT_FUNDS),
        )

    def check_credentials(self) -> None:
        """Ask for a reference that does not exist: a 404 means the token was accepted."""
        path = "/api/transactions/public/single/status/kiosque-credentials-check"
        answer = self.request("GET", path, headers=self._auth, reject_4xx=False)
        if answer.status in (401, 403):
            raise self.error(
                ProviderRejected,
                f"token refused (HTTP {answer.status})",
                code=str(answer.status),
                provider_message=self.provider_message(answer.body),
            )

    def provider_message(self, body: Mapping[str, Any]) -> str | None:
        """FeexPay explains itself in `message` or `error`."""
        return super().provider_message(body) or text(body.get("error"))
