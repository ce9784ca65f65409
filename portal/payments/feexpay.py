"""FeexPay: a "request to pay" on the buyer's network, then a status endpoint.

FeexPay has no hosted page of its own. Its answer to each request says how the buyer approves:
most networks push a prompt to the phone; some (Wave, Orange...) answer with a `payment_url` the
buyer must open; some want a payment code (OTP) the buyer got from the operator by USSD, sent
with the request. The network table below only says when to ask for that code first, where a
payment page may come from, and the currency (docs/providers.md#feexpay-networks). A request
whose answer is lost may still ring the phone (`unanswered_checkout_may_charge`). FeexPay's
webhook (a URL set in its dashboard) is unsigned, so a notification is only a pointer to a
reference whose status the app fetches.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from portal.payments import phones
from portal.payments.base import (
    CheckoutSession,
    CredentialField,
    InvalidNotification,
    KeysRefused,
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
    text,
    wallets_by_country,
    whole_number,
)

# How to get an Orange Money payment code. The USSD codes come from integrations, never from
# Orange: "essayez" says so to the buyer (docs/providers.md#ussd-hints).
_ORANGE_SN_CODE = N_("Demandez un code de paiement dans le menu Orange Money de votre téléphone (essayez "
                     "#144#391#), puis saisissez-le ici.")
_ORANGE_BF_CODE = N_("Demandez un code de paiement dans le menu Orange Money de votre téléphone (essayez "
                     "*144*4*6*%(amount)s#), puis saisissez-le ici.")
_ORANGE_CI_CODE = N_("Demandez un code de paiement dans le menu Orange Money de votre téléphone (essayez "
                     "#144*82#, option 2), puis saisissez-le ici.")

# The networks by their path segment ("celtiis_bj", not "celtiis"), with the wallet buyers know.
# Where the sources disagree on push or payment page (Moov CI and BF, Free SN, Orange), the
# request is ready for a page and the answer decides. Coris Money (a bank wallet that texts a
# code after a first answer) is not offered: Kiosque does not follow that flow.
NETWORKS: dict[str, Network] = {n.code: n for n in (
    Network("mtn", "bj", "MTN MoMo"), Network("moov", "bj", "Moov Money"),
    Network("celtiis_bj", "bj", "Celtiis Cash"),
    Network("togocom_tg", "tg", "T-Money"), Network("moov_tg", "tg", "Flooz"),
    Network("mtn_ci", "ci", "MTN MoMo"),
    Network("moov_ci", "ci", "Moov Money", may_redirect=True),
    Network("orange_ci", "ci", "Orange Money", otp_hint=_ORANGE_CI_CODE, may_redirect=True,
            checkout_hosts=("mpayment.orange-money.com",)),
    Network("wave_ci", "ci", "Wave", may_redirect=True, checkout_hosts=("pay.wave.com",)),
    Network("orange_bf", "bf", "Orange Money", otp=True, otp_hint=_ORANGE_BF_CODE, may_redirect=True),
    Network("moov_bf", "bf", "Moov Money", may_redirect=True),
    Network("orange_sn", "sn", "Orange Money", otp=True, otp_hint=_ORANGE_SN_CODE, may_redirect=True,
            checkout_hosts=("sugu.orange-sonatel.com",)),
    Network("free_sn", "sn", "Free Money", may_redirect=True),
    Network("wave_sn", "sn", "Wave", may_redirect=True, checkout_hosts=("pay.wave.com",)),
    Network("mtn_cg", "cg", "MTN MoMo", currency="XAF"),
)}

# SUCCESSFUL/PENDING/FAILED are the documented values; the others appear in SDK types and
# integrations. ACCEPTED, like INPROGRESS, means "not paid yet" in FeexPay's own widget.
STATUSES: dict[str, PaymentStatus] = {
    "SUCCESSFUL": PaymentStatus.PAID,
    "SUCCESS": PaymentStatus.PAID,
    "PENDING": PaymentStatus.PENDING,
    "IN PENDING STATE": PaymentStatus.PENDING,
    "ACCEPTED": PaymentStatus.PENDING,
    "INPROGRESS": PaymentStatus.PENDING,
    "INITIATED": PaymentStatus.PENDING,
    "PRE_INITIATED": PaymentStatus.PENDING,
    "FAILED": PaymentStatus.FAILED,
    "INSUFFICIENT_FUNDS": PaymentStatus.FAILED,
    "TIMEOUT": PaymentStatus.EXPIRED,
    "CANCELLED": PaymentStatus.CANCELLED,
    "CANCELED": PaymentStatus.CANCELLED,
}

# What a refusal's message is about, by the words FeexPay and the operators use (first match wins).
_REFUSED_INPUT = (
    ("otp", re.compile(r"\botp\b|payment code|code de paiement", re.IGNORECASE)),
    ("phone", re.compile(r"phone|num[ée]ro|msisdn", re.IGNORECASE)),
    ("network", re.compile(r"network|r[ée]seau", re.IGNORECASE)),
)

# What a failure caused by the wallet's balance says: FeexPay's own status, or the operator's
# `reason` (MTN's words also cover an account's limits; buyers hear "solde insuffisant" first).
INSUFFICIENT_FUNDS = {"INSUFFICIENT_FUNDS", "LOW_BALANCE_OR_PAYEE_LIMIT_REACHED_OR_NOT_ALLOWED"}

# Only letters, digits and spaces: MTN refuses anything else.
_NOT_ALLOWED_IN_DESCRIPTION = re.compile(r"[^a-zA-Z0-9 ]")


def _description(value: str) -> str:
    """Strip accents first so "journée" becomes "journee" rather than "journe"."""
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return " ".join(_NOT_ALLOWED_IN_DESCRIPTION.sub(" ", plain).split())


# Key refusals come as 401 or 403.
_BAD_TOKEN = N_("le jeton API (fp_…) est refusé. Recopiez-le depuis le tableau de bord FeexPay, sans espace, "
                "et vérifiez l'identifiant de la boutique.")


class FeexPay(PaymentProvider):
    name = "feexpay"
    title = "FeexPay"
    # V2: the V1 host (api.feexpay.me) answers 502 since September 2026; the paths are the same.
    api_urls = {"live": "https://api-v2.feexpay.me"}
    credential_fields = (
        CredentialField("shop_id", N_("Identifiant de la boutique (shop)"), secret=False),
        CredentialField("token", N_("Jeton API (fp_…)"), secret=True),
    )
    public_id_field = "shop_id"
    # A push needs nothing in the walled garden (FeexPay's own widget would need api.feexpay.me and
    # api.ipify.org); payment pages need their network's checkout_hosts.
    checkout_hosts = {"live": ()}
    needs_phone = True
    unanswered_checkout_may_charge = True
    networks = NETWORKS
    wallets = wallets_by_country(NETWORKS)
    currencies = tuple(dict.fromkeys(n.currency for n in NETWORKS.values()))
    guide_buy_path = "/buy-mikhmon-feexpay"
    guide_public_id_param = "siteid"
    webhook_setup = N_("À déclarer dans le tableau de bord FeexPay (menu Webhook).")
    refusals = {"401": _BAD_TOKEN, "403": _BAD_TOKEN}

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials['token']}"}

    def create_checkout(self, order: OrderData) -> CheckoutSession:
        network = NETWORKS.get(order.network or "")
        if network is None:
            raise self.error(ProviderRejected, f"unknown network {order.network!r}", code="network")
        number = self._phone_number(order.phone or "", network)
        if network.otp and not order.otp:
            raise self.error(ProviderRejected, f"{network.code} needs the buyer's payment code (otp)", code="otp")
        payload: dict[str, Any] = {
            "shop": self.credentials["shop_id"],
            "amount": order.amount,
            "phoneNumber": phones.digits(number),
            "description": _description(order.description),
            "callback_info": order.code,
        }
        first, last = name_parts(order.customer_name)
        if first:
            payload.update(first_name=first, last_name=last)
        if order.email:
            payload["email"] = order.email
        if order.otp:
            payload["otp"] = order.otp
        if network.may_redirect:  # the buyer comes back to the order page, paid or not
            payload.update(return_url=order.return_url, cancel_url=order.return_url)
        path = f"/api/transactions/public/requesttopay/{network.code}"
        try:
            body = self.request("POST", path, json=payload, headers=self._auth).body
        except KeysRefused:
            raise
        except ProviderRejected as exc:
            raise self._about_input(exc) from None
        # Payment pages may name the payment by order_id alone.
        ref = text(body.get("reference")) or text(body.get("order_id"))
        if ref is None:
            raise self.error(ProviderUnavailable, "payment request without a reference", code="body")
        # Even an immediate FAILED or SUCCESSFUL is only confirmed by the status call.
        return CheckoutSession(provider_ref=ref, redirect_url=self._payment_page(body))

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

    def fetch_status(self, provider_ref: str, order_code: str, network: str | None = None) -> PaymentCheck:
        path = f"/api/transactions/public/single/status/{quote(provider_ref, safe='')}"
        body = self.request("GET", path, headers=self._auth).body
        # Some integrations find the payment under `data`.
        payment = body["data"] if isinstance(body.get("data"), dict) else body
        owner = text(payment.get("callback_info"))
        if owner is not None and owner != order_code:
            raise self.error(ProviderRejected, f"payment {provider_ref} belongs to another order", code="order")
        status = text(payment.get("status"))
        reason = text(payment.get("reason"))
        return PaymentCheck(
            provider_ref=provider_ref,
            status=STATUSES.get(status.upper(), PaymentStatus.PENDING) if status else PaymentStatus.PENDING,
            amount=whole_number(payment.get("amount")),
            # FeexPay names no currency: its amounts are in the network's (XAF in Congo).
            currency=text(payment.get("currency")) or (NETWORKS[network].currency if network in NETWORKS else None),
            # `operator_id` in the status answer, `ref_operator` in the webhook's words.
            payer_reference=text(payment.get("operator_id")) or text(payment.get("ref_operator")),
            payer_phone=text(payment.get("phoneNumber")),
            insufficient_funds=bool({(status or "").upper(), (reason or "").upper()} & INSUFFICIENT_FUNDS),
        )

    def check_credentials(self) -> None:
        """Ask for a reference that does not exist: a 404 means the token was accepted."""
        path = "/api/transactions/public/single/status/kiosque-credentials-check"
        answer = self.request("GET", path, headers=self._auth, reject_4xx=False)
        if answer.status in (401, 403):
            raise self.refusal(answer.status, answer.body)

    def provider_message(self, body: Mapping[str, Any]) -> str | None:
        """FeexPay explains itself in `message` or `error`."""
        return super().provider_message(body) or text(body.get("error"))

    def _phone_number(self, phone: str, network: Network) -> str:
        """The payer's number in E.164, which must be a mobile number of the network's country."""
        try:
            number = phones.normalise(phone, network.country)
        except phones.InvalidPhone:
            number = ""
        if not number or phones.country_of(number) != network.country:
            raise self.error(ProviderRejected, f"not a mobile number of {network.country.upper()}", code="phone")
        return number

    def _about_input(self, refusal: ProviderRejected) -> ProviderRejected:
        """A refusal that names the buyer's input (the number, the payment code, the network) says which."""
        said = refusal.provider_message or ""
        field = next((name for name, words in _REFUSED_INPUT if words.search(said)), None)
        if field is None:
            return refusal
        return self.error(ProviderRejected, f"the {field} was refused ({refusal.code})", code=field,
                          provider_message=said)

    def _payment_page(self, body: Mapping[str, Any]) -> str | None:
        """The page the buyer must open (`payment_url`, `paymentUrl` in some code); None for a push."""
        url = text(body.get("payment_url")) or text(body.get("paymentUrl"))
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise self.error(ProviderUnavailable, "payment_url is not a web address", code="body")
        return url
