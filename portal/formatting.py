"""How money and limits read on pages: `1 000 FCFA`, `1 h · 500 Mo`."""

from flask import Flask
from flask_babel import get_locale
from flask_babel import gettext as _

from portal.routeros import units

CURRENCY_LABELS = {"XOF": "FCFA", "XAF": "FCFA"}


def price(amount: int, currency: str) -> str:
    """Whole units grouped by thin spaces, as prices are written in West Africa; never wrapped."""
    return f"{amount:,}".replace(",", "\u202f") + "\u00a0" + CURRENCY_LABELS.get(currency, currency)


def limits(plan) -> str:
    """The plan's time and data limits in words, or that it has none."""
    lang = str(get_locale() or "fr")
    parts = []
    if plan.time_limit:
        parts.append(units.describe_duration(units.parse_duration(plan.time_limit), lang=lang))
    if plan.data_limit_bytes:
        parts.append(units.describe_bytes(plan.data_limit_bytes, lang=lang))
    return " · ".join(parts) or _("sans limite")


def register(app: Flask) -> None:
    app.add_template_filter(price)
    app.add_template_filter(limits)
    app.add_template_global(lambda: str(get_locale() or "fr"), "current_locale")
