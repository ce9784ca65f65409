"""What owners of the guide Kiosque replaces already have, read back into routers and plans.

Two things can be pasted (docs/routeros.md#the-hosted-guides-parameters-and-links): the webhook
URL with its `mik*` parameters (owners whose provider takes no query string have them as header
lines, `mikadminuser: admin`), which gives the router's settings;
and the buy links of their login.html, which give its plans. The parsers are pure: they return
dataclasses or raise GuideError, whatever the text; `import_buy_links` then saves the plans.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from flask_babel import gettext as _

from portal.models import Plan, Router
from portal.routeros import credentials, units
from portal.services import plans as plan_service
from portal.services.script_text import ScriptValueError, hostname

MAX_TEXT = 20_000  # far more than a webhook URL or a login page's links
MAX_LINKS = 100
CURRENCY_ALIASES = {"FCFA": "XOF", "CFA": "XOF", "F CFA": "XOF"}  # the guide's West African francs
MAX_PRICE = 10_000_000  # as on the plan form

_HEADER = re.compile(r"\s*(mik[a-z]+)\s*[:\t]\s*(.*?)\s*", re.IGNORECASE)  # a header list's `name: value`
_HREF = re.compile(r"""href\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_CALLBACK_PATH = re.compile(r"/pay_callback/[a-z]+/([^/?#]+)")
_PLAIN = re.compile(r"[^\x00-\x1f\x7f]*")
_ALNUM = re.compile(r"[A-Za-z0-9]*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ISO = re.compile(r"[A-Za-z]{3}")


class GuideError(ValueError):
    """The pasted text cannot be read; `problems` lists what to fix, one sentence each."""

    def __init__(self, problems: list[str]):
        super().__init__(" ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class GuideRouter:
    """Router settings read from the guide's webhook parameters, with the router form's defaults."""

    name: str = ""
    api_username: str = ""
    api_password: str = field(default="", repr=False)
    user_mode: str = "vc"
    name_length: int = 6
    charset: str = "lower"
    prefix: str = ""
    dns_name: str = ""
    hotspot_server: str = "all"
    currency: str = "XOF"
    notify_email: str = ""
    notes: tuple[str, ...] = ()  # values Kiosque changed to fit, said to the owner

    def form_data(self) -> dict:
        """The router form's fields (the password included: the caller decides where it goes)."""
        return {name: getattr(self, name) for name in (
            "name", "api_username", "api_password", "user_mode", "name_length", "charset", "prefix", "dns_name",
            "hotspot_server", "currency", "notify_email")}


def _plain(value: str, limit: int) -> bool:
    return len(value) <= limit and _PLAIN.fullmatch(value) is not None


def _lines(text: str) -> list[str]:
    if len(text) > MAX_TEXT:
        raise GuideError([_("Le texte collé est trop long.")])
    return [line.strip() for line in text.splitlines() if line.strip()]


def _query_parts(text: str) -> tuple[str, dict[str, str]]:
    """The path and query parameters of a URL, an `<a href>` tag or a bare query string."""
    if (href := _HREF.search(text)) is not None:
        text = href.group(1)
    text = text.replace("&amp;", "&")
    try:
        parts = urlsplit(text)
        query = parts.query if "?" in text else text
        return parts.path, dict(parse_qsl(query, keep_blank_values=True, max_num_fields=50))
    except ValueError:  # a malformed address, or too many parameters; never echoed: it may hold a password
        raise GuideError([_("Adresse illisible : vérifiez qu'elle a été collée en entier.")]) from None


def _guide_parameters(text: str) -> tuple[dict[str, str], str]:
    """The `mik*` parameters of a webhook URL and/or header lines, and the router name in the URL."""
    params: dict[str, str] = {}
    name = ""
    for line in _lines(text):
        if (header := _HEADER.fullmatch(line)) is not None:
            params[header.group(1).lower()] = header.group(2)
            continue
        path, query = _query_parts(line)
        if (callback := _CALLBACK_PATH.search(path)) is not None:
            name = unquote(callback.group(1)).strip()
        params.update((k.lower(), v.strip()) for k, v in query.items() if k.lower().startswith("mik"))
    return params, name


def parse_webhook(text: str) -> GuideRouter:
    """Read the guide's webhook URL, or the header list it has owners declare to their provider, into router settings."""
    params, name = _guide_parameters(text)
    if not params:
        raise GuideError([_("Aucun paramètre du guide (mikadminuser, mikusermode…) n'a été trouvé. Collez "
                            "l'URL de notification complète ou la liste des en-têtes (mikadminuser: …) du guide.")])
    values: dict = {}
    problems: list[str] = []
    notes: list[str] = []

    def bad(parameter: str, expected: str) -> None:
        problems.append(_("%(parameter)s : %(expected)s", parameter=parameter, expected=expected))

    if name:
        if _plain(name, 80):
            values["name"] = name
        else:
            bad(_("nom dans l'URL"), _("80 caractères au plus, sans caractère de contrôle."))
    if (user := params.get("mikadminuser")) is not None:
        if user and _plain(user, 80):
            values["api_username"] = user
        else:
            bad("mikadminuser", _("un nom d'utilisateur est attendu."))
    if (password := params.get("mikadminpass")) is not None:
        if _plain(password, 200):
            values["api_password"] = password
        else:
            bad("mikadminpass", _("200 caractères au plus, sans caractère de contrôle."))
    if (mode := params.get("mikusermode")) is not None:
        if mode.lower() in credentials.MODES:
            values["user_mode"] = mode.lower()
        else:
            bad("mikusermode", _("« up » ou « vc » attendu."))
    if (length := params.get("miknamelength")) is not None:
        if length.isascii() and length.isdigit() and len(length) <= 3:
            clamped = min(max(int(length), credentials.MIN_LENGTH), credentials.MAX_LENGTH)
            values["name_length"] = clamped
            if clamped != int(length):
                notes.append(_("Longueur du code ramenée de %(given)s à %(used)s (de %(min)s à %(max)s).",
                               given=int(length), used=clamped, min=credentials.MIN_LENGTH,
                               max=credentials.MAX_LENGTH))
        else:
            bad("miknamelength", _("un nombre est attendu."))
    if (charset := params.get("mikcharacter")) is not None:
        if charset.lower() in credentials.CHARSETS:
            values["charset"] = charset.lower()
        else:
            bad("mikcharacter", _("une de ces valeurs est attendue : %(names)s.",
                                  names=", ".join(credentials.CHARSETS)))
    if (email := params.get("miknotifemail")) is not None and email:
        if _plain(email, 254) and _EMAIL.fullmatch(email):
            values["notify_email"] = email
        else:
            bad("miknotifemail", _("une adresse e-mail est attendue."))
    if (prefix := params.get("mikuserprefix")) is not None:
        if len(prefix) <= credentials.MAX_PREFIX and _ALNUM.fullmatch(prefix):
            values["prefix"] = prefix
        else:
            bad("mikuserprefix", _("%(max)s lettres ou chiffres au plus.", max=credentials.MAX_PREFIX))
    if (dns_name := params.get("mikdnsname")) is not None and dns_name:
        try:
            values["dns_name"] = hostname(dns_name)
        except ScriptValueError:
            bad("mikdnsname", _("un nom DNS est attendu, par exemple wifi.net."))
    if (server := params.get("mikserver")) is not None and server:
        if _plain(server, 80):
            values["hotspot_server"] = server
        else:
            bad("mikserver", _("80 caractères au plus, sans caractère de contrôle."))
    if (currency := params.get("mikcurrency")) is not None and currency:
        code = CURRENCY_ALIASES.get(currency.upper(), currency.upper())
        if _ISO.fullmatch(code):
            values["currency"] = code
        else:
            bad("mikcurrency", _("FCFA ou un code ISO à trois lettres est attendu."))
    if values.get("charset") == "num" and values.get("user_mode", "vc") != "vc":
        bad("mikcharacter", _("« num » n'est possible qu'en mode voucher (vc)."))
    if problems:
        raise GuideError(problems)
    return GuideRouter(**values, notes=tuple(notes))


@dataclass(frozen=True)
class BuyLink:
    """A plan as one of the guide's buy links describes it; the price is the owner's own."""

    profile: str
    price: int
    time_limit: str  # canonical MikroTik duration, "" = none
    data_limit_bytes: int  # 0 = none

    def query(self) -> str:
        """This link reduced to its plan (no provider key), in a form `parse_buy_link` reads back."""
        return urlencode({"profile_name": self.profile, "amount": self.price, "timelimit": self.time_limit,
                          "datalimit": units.format_bytes(self.data_limit_bytes)})


def parse_buy_link(text: str) -> BuyLink:
    """Read one buy link (a URL, an `<a href>` tag or a bare query string)."""
    _path, params = _query_parts(text.strip())
    problems = []
    profile = params.get("profile_name", "").strip()
    if not profile or not _plain(profile, 80):
        problems.append(_("profile_name : le nom exact du profil Mikhmon est attendu."))
    amount = params.get("amount", "").strip()
    price = int(amount) if amount.isascii() and amount.isdigit() and len(amount) <= 8 else 0
    if not 1 <= price <= MAX_PRICE:
        problems.append(_("amount : un prix entier entre 1 et %(max)s est attendu.", max=MAX_PRICE))
    try:
        seconds = units.parse_duration(params.get("timelimit", ""))
    except ValueError:
        seconds = 0
        problems.append(_("timelimit : une durée MikroTik est attendue, par exemple 30m, 1h ou 1d."))
    try:
        data_limit = units.parse_bytes(params.get("datalimit", ""))
    except ValueError:
        data_limit = 0
        problems.append(_("datalimit : un volume est attendu, par exemple 0M, 500M ou 1G."))
    if problems:
        raise GuideError(problems)
    return BuyLink(profile=profile, price=price, time_limit=units.format_duration(seconds) if seconds else "",
                   data_limit_bytes=data_limit)


@dataclass(frozen=True)
class BuyLinks:
    links: list[BuyLink]
    problems: list[str]  # one per line that could not be read, with its number


def parse_buy_links(text: str) -> BuyLinks:
    """Read one buy link per line; a line that cannot be read is reported, the others kept (once)."""
    lines = _lines(text)
    if not lines:
        raise GuideError([_("Collez au moins un lien d'achat.")])
    if len(lines) > MAX_LINKS:
        raise GuideError([_("%(max)s liens au plus à la fois.", max=MAX_LINKS)])
    links: dict[BuyLink, None] = {}
    problems = []
    for number, line in enumerate(lines, start=1):
        try:
            links[parse_buy_link(line)] = None
        except GuideError as exc:
            problems.append(_("Ligne %(number)s : %(problem)s", number=number, problem=str(exc)))
    return BuyLinks(links=list(links), problems=problems)


@dataclass(frozen=True)
class PlanImport:
    """What became of one chosen link: its plan, or why there is none."""

    link: BuyLink | None
    plan: Plan | None = None
    error: str = ""


def import_buy_links(router: Router, queries: list[str]) -> list[PlanImport]:
    """Create a plan for each chosen link (as `BuyLink.query` wrote it) through the plan service."""
    results = []
    for query in queries:
        try:
            link = parse_buy_link(query)
        except GuideError as exc:
            results.append(PlanImport(link=None, error=str(exc)))
            continue
        labels = {p.label for p in router.plans}
        label = link.profile if link.profile not in labels else f"{link.profile} ({link.price})"
        values = {"label": label[:60], "profile": link.profile, "price": link.price, "currency": router.currency,
                  "time_limit": link.time_limit, "data_limit_bytes": link.data_limit_bytes, "active": True,
                  "position": len(router.plans)}
        try:
            results.append(PlanImport(link=link, plan=plan_service.save_plan(router, None, values)))
        except plan_service.PlanError as exc:
            results.append(PlanImport(link=link, error=str(exc)))
    return results
