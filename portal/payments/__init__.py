"""Payment providers: one adapter per provider, and the registry that lists them.

Adding a provider is writing its adapter (a `PaymentProvider` with its facts) and listing it here.
"""

from collections.abc import Mapping

import requests

from portal.payments.base import Network, PaymentProvider
from portal.payments.cinetpay import CinetPay
from portal.payments.fedapay import FedaPay
from portal.payments.feexpay import FeexPay

# In the order owners see them.
PROVIDERS: dict[str, type[PaymentProvider]] = {cls.name: cls for cls in (FedaPay, CinetPay, FeexPay)}


def get_provider(
    name: str,
    credentials: Mapping[str, str],
    *,
    base_url: str,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> PaymentProvider:
    """The adapter listed as `name`, bound to these credentials (KeyError when there is none)."""
    return PROVIDERS[name](credentials, base_url=base_url, timeout=timeout, session=session)


def api_url_defaults() -> dict[str, str]:
    """Every provider's API base URL setting with its public default, for the app's configuration."""
    return {cls.api_url_setting(env): url for cls in PROVIDERS.values() for env, url in cls.api_urls.items()}


def currencies() -> tuple[str, ...]:
    """The currencies plans can be sold in: those of every provider, the usual ones first."""
    usual = [cls.currencies[0] for cls in PROVIDERS.values()]
    return tuple(dict.fromkeys(usual + [c for cls in PROVIDERS.values() for c in cls.currencies]))


def served_countries() -> list[str]:
    """The countries where some provider takes a wallet (ISO 3166 alpha-2, lower case)."""
    return sorted({country for cls in PROVIDERS.values() for country in cls.wallets})


def find_network(code: str) -> Network | None:
    """A network any provider charges, by its code."""
    return next((cls.networks[code] for cls in PROVIDERS.values() if code in cls.networks), None)
