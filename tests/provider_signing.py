"""The providers' notification signatures, written again from docs/providers.md.

Deliberately independent of portal/payments and portal/sandbox: tests sign with these and check
what the sandbox sends with these, so a mistake shared by both would have to be made three times.
"""

import hashlib
import hmac
from collections.abc import Mapping

# CinetPay's x-token covers these form fields, in this order, concatenated without separators.
CINETPAY_SIGNED_FIELDS = (
    "cpm_site_id",
    "cpm_trans_id",
    "cpm_trans_date",
    "cpm_amount",
    "cpm_currency",
    "signature",
    "payment_method",
    "cel_phone_num",
    "cpm_phone_prefixe",
    "cpm_language",
    "cpm_version",
    "cpm_payment_config",
    "cpm_page_action",
    "cpm_custom",
    "cpm_designation",
    "cpm_error_message",
)


def fedapay_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The X-FEDAPAY-SIGNATURE value: `t=<unix>,s=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},s={digest}"


def cinetpay_x_token(secret: str, fields: Mapping[str, str]) -> str:
    """The x-token header: hex HMAC-SHA256 over the signed fields, a missing one counting as ""."""
    message = "".join(fields.get(name, "") for name in CINETPAY_SIGNED_FIELDS)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
