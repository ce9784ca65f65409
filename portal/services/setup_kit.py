"""The setup kit: what takes a fresh router to a first sale, a RouterOS script and a login.html.

Decisions, for whoever changes them:

- Walled garden: one `/ip hotspot walled-garden ip` entry per host the buyer's browser must
  reach before paying: Kiosque itself, then each offered account's checkout hosts, which each
  adapter declares per environment (`checkout_hosts`). Provider APIs that only Kiosque's server
  calls stay out.
- API user: group `kiosque` with `api,read,write`. `api` lets it log in over the API, `read`
  covers every print (facts, profiles, hotspot users), `write` covers hotspot user add/remove
  and `/ip/hotspot/active/login`. Nothing more: `test` is for ping, traceroute and the like,
  `sensitive` only reveals passwords (Kiosque finds its users by comment, never reads a
  password back), `policy` would let it manage router users. When the operator sets
  `KIOSQUE_SOURCE_ADDRESS`, the user only logs in from there and, if the owner keeps the box
  ticked, the API service only listens to it (Mikhmon on another machine would then lose it).
- The password is drawn when the owner asks for the script and shown once, in the script. It
  comes back only sealed (encrypted with the app's key, bound to the router) in the form of
  "J'ai exécuté le script", and replaces the router's credentials only once the router accepts
  it: an owner who never runs the script keeps a working router.
- Every value written into the script goes through `script_string` (or is a validated token:
  a number, a policy or login-by name), so no router name, host or profile can run a command.
"""

import ipaddress
import json
import logging
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, url_for
from flask_babel import gettext as _
from markupsafe import Markup, escape

from portal import crypto, formatting
from portal.extensions import db
from portal.models import PaymentAccount, Plan, Router
from portal.payments import PROVIDERS
from portal.services import routers as router_service

log = logging.getLogger(__name__)

API_USER = "kiosque"
API_GROUP = "kiosque"
API_POLICY = "api,read,write"
COMMENT = "kiosque"
PASSWORD_LENGTH = 24
PASSWORD_ALPHABET = string.ascii_letters + string.digits
# The hotspot context a login page hands to Kiosque's plans page (docs/routeros.md#passing-the-hotspot-context-to-kiosque), filled in by the router.
HOTSPOT_QUERY = "?mac=$(mac-esc)&ip=$(ip-esc)&dst=$(link-orig-esc)&server=$(server-name-esc)"
RETRIEVE_QUERY = "?mac=$(mac-esc)&ip=$(ip-esc)"
LOGIN_METHODS = frozenset({"cookie", "http-chap", "http-pap", "https", "mac", "trial", "mac-cookie"})

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\Z")
_ESCAPED = frozenset('\\"$?')  # `$` starts a variable, `?` asks the console for help


class KitError(ValueError):
    """The kit cannot be made or used as asked; the message says why, in the owner's words."""


class ScriptValueError(KitError):
    """A value cannot be written safely into a RouterOS script."""


def script_string(value: str) -> str:
    """Quote `value` as a RouterOS string literal; control characters are refused.

    Backslash, double quote, `$` and `?` are escaped; anything beyond ASCII is written as the
    `\\XX` escapes of its UTF-8 bytes, which the console reads the same whatever its charset.
    """
    out = []
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            shown = value.encode("unicode_escape").decode()
            raise ScriptValueError(_("Caractère de contrôle refusé dans « %(value)s ».", value=shown))
        if char in _ESCAPED:
            out.append("\\" + char)
        elif char.isascii():
            out.append(char)
        else:
            out.extend(f"\\{byte:02X}" for byte in char.encode())
    return '"' + "".join(out) + '"'


def hostname(value: str) -> str:
    """A DNS name, lower-cased, or ScriptValueError: no quote, space or separator can pass."""
    host = value.strip().rstrip(".").lower()
    if not _HOSTNAME.match(host):
        raise ScriptValueError(_("« %(value)s » n'est pas un nom d'hôte.", value=value))
    return host


def _address(value: str) -> str:
    """An IP address or network, as RouterOS writes it (a single address gets /32 or /128)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ScriptValueError(_("« %(value)s » n'est pas une adresse IP.", value=value)) from None


def public_host() -> str:
    """The host buyers reach Kiosque on, from PUBLIC_URL."""
    return urlsplit(current_app.config["PUBLIC_URL"]).hostname or ""


def source_address() -> str:
    """The address Kiosque reaches routers from, when the operator set a valid one ("" otherwise)."""
    value = current_app.config.get("KIOSQUE_SOURCE_ADDRESS") or ""
    try:
        return _address(value) if value else ""
    except ScriptValueError:
        log.warning("KIOSQUE_SOURCE_ADDRESS %r is not an IP address or network: ignored", value)
        return ""


def provider_hosts(account: PaymentAccount) -> tuple[str, ...]:
    """The hosts a buyer's browser must reach to pay through this account."""
    hosts = PROVIDERS[account.provider].checkout_hosts
    return hosts.get(account.environment) or next(iter(hosts.values()))


def walled_garden_hosts(router: Router, kiosque_host: str) -> list[str]:
    """Kiosque's host, then each offered account's checkout hosts, each once."""
    hosts = [kiosque_host] + [h for a in router.offered_accounts for h in provider_hosts(a)]
    return list(dict.fromkeys(h for h in hosts if h))


@dataclass(frozen=True)
class ScriptOptions:
    """What the owner chose on the kit page."""

    http_pap_profiles: tuple[str, ...] = ()  # server profiles whose login-by gains http-pap
    restrict_service: bool = False  # the API service listens only to Kiosque's address


def pap_candidates(router: Router) -> list[dict]:
    """Server profiles (from the last connection test) whose known login-by lacks http-pap."""
    return [p for p in router.facts.get("server_profiles", [])
            if p["login_by"] and "http-pap" not in p["login_by"].split(",")]


def _login_by_with_pap(router: Router, profile: str) -> str:
    known = {p["name"]: p for p in pap_candidates(router)}
    if profile not in known:
        raise ScriptValueError(_("Le routeur n'a pas de profil serveur « %(name)s » sans http-pap.", name=profile))
    methods = [m for m in known[profile]["login_by"].split(",") if m] + ["http-pap"]
    if not set(methods) <= LOGIN_METHODS:
        raise ScriptValueError(_("Méthode de connexion inconnue dans le profil « %(name)s ».", name=profile))
    return ",".join(methods)


def _walled_garden_entry(host: str) -> str:
    try:
        target = f"dst-address={ipaddress.ip_address(host)}"
    except ValueError:
        target = f"dst-host={script_string(hostname(host))}"
    return f"/ip hotspot walled-garden ip add action=accept {target} comment={script_string(COMMENT)}"


def render_script(router: Router, password: str, options: ScriptOptions, *, kiosque_host: str,
                  source: str) -> str:
    """The RouterOS script; running it twice leaves the router as running it once."""
    service = "api-ssl" if router.use_tls else "api"
    allowed = f" address={script_string(_address(source))}" if source else ""
    user, group, secret = script_string(API_USER), script_string(API_GROUP), script_string(password)
    lines = [
        "# Kiosque: walled garden",
        f"/ip hotspot walled-garden ip remove [find comment={script_string(COMMENT)}]",
        *(_walled_garden_entry(host) for host in walled_garden_hosts(router, kiosque_host)),
        "# Kiosque: API service",
        f"/ip service set {service} disabled=no port={int(router.port)}"
        + (allowed if options.restrict_service else ""),
        "# Kiosque: API user",
        f":if ([:len [/user group find name={group}]] = 0) do={{/user group add name={group} policy={API_POLICY}}}",
        f"/user group set [find name={group}] policy={API_POLICY}",
        f":if ([:len [/user find name={user}]] = 0) do={{/user add name={user} group={group} password={secret}}}",
        f"/user set [find name={user}] group={group} password={secret}{allowed} disabled=no",
    ]
    if options.http_pap_profiles:
        lines.append("# Kiosque: http-pap")
        lines += [f"/ip hotspot profile set [find name={script_string(name)}] "
                  f"login-by={_login_by_with_pap(router, name)}" for name in options.http_pap_profiles]
    lines.append(f":put {script_string(f'Kiosque: {router.name} OK')}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SetupScript:
    """A generated script with the password it gives the `kiosque` user, and its sealed form."""

    script: str
    password: str
    options: ScriptOptions
    token: str


def _setup(router: Router, password: str, options: ScriptOptions) -> SetupScript:
    script = render_script(router, password, options, kiosque_host=public_host(), source=source_address())
    token = crypto.encrypt(json.dumps({"router": router.id, "password": password,
                                       "http_pap": list(options.http_pap_profiles),
                                       "restrict_service": options.restrict_service}))
    return SetupScript(script=script, password=password, options=options, token=token)


def new_setup(router: Router, options: ScriptOptions) -> SetupScript:
    """Draw a new password for the `kiosque` user and write the script that creates it."""
    password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))
    return _setup(router, password, options)


def reopen_setup(router: Router, token: str) -> SetupScript:
    """The script a sealed token stands for, for this router only."""
    try:
        sealed = json.loads(crypto.decrypt(token))
    except (crypto.SecretUnreadable, ValueError):
        sealed = None
    if not isinstance(sealed, dict) or sealed.get("router") != router.id:
        raise KitError(_("Ce script n'est plus valable : générez-en un nouveau."))
    options = ScriptOptions(http_pap_profiles=tuple(sealed["http_pap"]),
                            restrict_service=bool(sealed["restrict_service"]))
    return _setup(router, sealed["password"], options)


def adopt_credentials(router: Router, setup: SetupScript) -> router_service.ConnectionReport:
    """Switch the router to the `kiosque` user, only if the router accepts it (the script ran)."""
    router.api_username, router.api_password = API_USER, setup.password
    report = router_service.test_connection(router)  # commits the new credentials when it succeeds
    if not report.ok:
        db.session.rollback()
    return report


# -- the hotspot login page and its buttons ----------------------------------------------------------


def hotspot_html(text: str) -> Markup:
    """HTML-escaped text for a page the router serves: `$` too, or the router would read `$(...)`."""
    return Markup(str(escape(text)).replace("$", "&#36;"))


def _public_url(endpoint: str, **values) -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + url_for(endpoint, **values)


def buy_url(router: Router, plan: Plan) -> str:
    """The router's plans page with this plan chosen, and the hotspot variables the router fills in."""
    return _public_url("shop.plans", slug=router.slug) + HOTSPOT_QUERY + f"&plan_id={plan.id}"


def retrieve_url() -> str:
    """The retrieval page, told which client asks (its limits are the client's own, not the hotspot's)."""
    return _public_url("shop.retrieve") + RETRIEVE_QUERY


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{hotspot_html(text)}</a>'


def plan_links(router: Router) -> list[tuple[Plan, str]]:
    """Each active plan with its buy link: the plans page opens with that plan chosen."""
    return [(plan, buy_url(router, plan)) for plan in router.plans if plan.active]


def plan_snippets(router: Router) -> list[tuple[Plan, str]]:
    """One buy link per active plan, for owners who keep their own login.html."""
    return [(plan, _link(url, f"{plan.label} · {formatting.price(plan.price, plan.currency)}"))
            for plan, url in plan_links(router)]


def retrieve_snippet() -> str:
    return _link(retrieve_url(), _("Récupérer mon code"))
