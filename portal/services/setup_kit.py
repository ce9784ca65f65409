"""The setup kit: what takes a fresh router to a first sale, a RouterOS script and the hotspot pages.

Decisions, for whoever changes them:

- Walled garden: one `/ip hotspot walled-garden ip` entry per host the buyer's browser must
  reach before paying: Kiosque itself, then each offered account's checkout hosts, which each
  adapter declares per environment (`checkout_hosts`), and those of the payment pages of the
  networks the account enabled (`Network.checkout_hosts`). Provider APIs that only Kiosque's
  server calls stay out.
- API user: group `kiosque` with `api,read,write`. `api` lets it log in over the API, `read`
  covers every print (facts, profiles, hotspot users), `write` covers hotspot user add/remove
  and `/ip/hotspot/active/login`. Nothing more: `test` is for ping, traceroute and the like,
  `sensitive` only reveals passwords (Kiosque finds its users by comment, never reads a
  password back), `policy` would let it manage router users. When the operator sets
  `KIOSQUE_SOURCE_ADDRESS`, the user only logs in from there and, if the owner keeps the box
  ticked, Kiosque's address joins the API service's allowed addresses (a service open to all
  then listens to Kiosque only: Mikhmon on another machine would lose it).
- The API service's port is never set: owners forward ports to it and Mikhmon uses it, and
  `Router.port` is the port Kiosque dials, not always the one the router listens on
  (docs/routeros.md#restricting-the-api-service). Restrictions are by address only.
- A router on Kiosque's tunnel gets the WireGuard part (services/tunnel_script.py, RouterOS 7)
  instead of the API service lines, and its `kiosque` user logs in only from the hub's tunnel
  address.
- The password is drawn when the owner asks for the script and shown once, in the script. It
  comes back only sealed (encrypted with the app's key, bound to the router) in the form of
  "J'ai exécuté le script", and replaces the router's credentials only once the router accepts
  it: an owner who never runs the script keeps a working router.
- Hotspot pages: the script's last part fetches Kiosque's page set through a one-time link into
  Kiosque's own directory and points the server profiles in use at it (services/hotspot_pages.py).
  It comes after the API user, so a fetch that fails (Kiosque unreachable from the router) leaves
  the rest done, and the profiles are switched only once every file is there. Without a connection
  test that read the profiles' `html-directory`, the part is left out (the kit page says so).
- Every value written into the script goes through `script_string` (or is a validated token:
  a number, a policy or login-by name), so no router name, host or profile can run a command.
"""

import ipaddress
import json
import logging
import secrets
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import Markup, escape

from portal import crypto, formatting
from portal.extensions import db
from portal.models import PaymentAccount, Plan, Router
from portal.payments import PROVIDERS
from portal.services import hotspot_pages, tunnel
from portal.services import routers as router_service
from portal.services.script_text import (
    KitError,
    ScriptValueError,
    address_prefix,
    allow_on_service,
    hostname,
    script_string,
)
from portal.services.tunnel_script import tunnel_lines
from portal.wireguard import router_interface

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


def public_host() -> str:
    """The host buyers reach Kiosque on, from PUBLIC_URL."""
    return urlsplit(current_app.config["PUBLIC_URL"]).hostname or ""


def source_address(router: Router | None = None) -> str:
    """The address Kiosque reaches this router from: the hub's through the tunnel, else the one the
    operator set, when valid ("" otherwise)."""
    if router is not None and router.tunnelled:
        return tunnel.source_address()
    value = current_app.config.get("KIOSQUE_SOURCE_ADDRESS") or ""
    try:
        return address_prefix(value) if value else ""
    except ScriptValueError:
        log.warning("KIOSQUE_SOURCE_ADDRESS %r is not an IP address or network: ignored", value)
        return ""


def provider_hosts(account: PaymentAccount) -> tuple[str, ...]:
    """The hosts a buyer's browser must reach to pay through this account: the provider's own, then
    the payment pages of the networks it enabled."""
    adapter = PROVIDERS[account.provider]
    hosts = adapter.checkout_hosts.get(account.environment) or next(iter(adapter.checkout_hosts.values()))
    networks = [adapter.networks[n] for n in account.settings.get("networks", []) if n in adapter.networks]
    return hosts + tuple(h for network in networks for h in network.checkout_hosts)


def walled_garden_hosts(router: Router, kiosque_host: str) -> list[str]:
    """Kiosque's host, then each offered account's checkout hosts, each once."""
    hosts = [kiosque_host] + [h for a in router.offered_accounts for h in provider_hosts(a)]
    return list(dict.fromkeys(h for h in hosts if h))


@dataclass(frozen=True)
class ScriptOptions:
    """What the owner chose on the kit page."""

    http_pap_profiles: tuple[str, ...] = ()  # server profiles whose login-by gains http-pap
    restrict_service: bool = False  # the API service listens only to Kiosque's address
    keep_own_pages: bool = False  # the hotspot keeps its pages: no pages part, no page link


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


def pages_profiles(router: Router) -> list[dict]:
    """The server profiles in use whose `html-directory` the last connection test read."""
    return [p for p in router_service.server_profiles_in_use(router) if p.get("html_directory")]


def pages_directory(router: Router) -> str:
    """Where the script puts Kiosque's pages ("" when the profiles were never read)."""
    profiles = pages_profiles(router)
    return hotspot_pages.kiosque_directory(profiles[0]["html_directory"]) if profiles else ""


def _html_directory_line(profile: str, directory: str) -> str:
    return f"/ip hotspot profile set [find name={script_string(profile)}] html-directory={script_string(directory)}"


def pages_lines(router: Router, pages_link: str) -> list[str]:
    """Fetch every page through the one-time link, then switch the profiles to their directory."""
    directory = pages_directory(router)
    if not directory:
        return []
    return [
        "# Kiosque: hotspot pages, in their own directory (the current pages stay where they are)",
        *(f"/tool fetch url={script_string(page_url(pages_link, name))} dst-path={script_string(f'{directory}/{name}')}"
          for name in hotspot_pages.PAGES),
        *(_html_directory_line(p["name"], directory) for p in pages_profiles(router)),
    ]


def go_back_lines(router: Router) -> list[str]:
    """The lines that give each profile its pages back, with the directory read before Kiosque's."""
    profiles = pages_profiles(router)
    before = hotspot_pages.remembered_directories(router.facts.get("html_directories_before", {}), profiles)
    return [_html_directory_line(p["name"], before[p["name"]] or hotspot_pages.default_directory(p["html_directory"]))
            for p in profiles]


def pages_in_place(router: Router) -> bool:
    profiles = pages_profiles(router)
    return bool(profiles) and all(hotspot_pages.is_kiosque_directory(p["html_directory"]) for p in profiles)


def pages_status(router: Router) -> str:
    """One line for the kit page: are Kiosque's pages what the hotspot shows?"""
    profiles = pages_profiles(router)
    if not profiles:
        return _("Kiosque ne sait pas encore où sont les pages du hotspot : testez la connexion au routeur, "
                 "puis générez le script.")
    if pages_in_place(router):
        return _("Les pages de Kiosque sont en place : le hotspot utilise le dossier « %(directory)s ».",
                 directory=profiles[0]["html_directory"])
    return _("Le hotspot affiche encore ses propres pages (dossier « %(directory)s ») : le script installe celles "
             "de Kiosque.", directory=", ".join(dict.fromkeys(p["html_directory"] for p in profiles)))


def render_script(router: Router, password: str, options: ScriptOptions, *, kiosque_host: str,
                  source: str, tunnel_part: list[str] | None = None, pages_part: list[str] | None = None) -> str:
    """The RouterOS script; running it twice leaves the router as running it once.

    `tunnel_part` (a tunnelled router's WireGuard lines) replaces the API service lines;
    `pages_part` (`pages_lines`) comes last.
    """
    service = "api-ssl" if router.use_tls else "api"
    allowed = f" address={script_string(address_prefix(source))}" if source else ""
    user, group, secret = script_string(API_USER), script_string(API_GROUP), script_string(password)
    lines = [
        "# Kiosque: walled garden",
        f"/ip hotspot walled-garden ip remove [find comment={script_string(COMMENT)}]",
        *(_walled_garden_entry(host) for host in walled_garden_hosts(router, kiosque_host)),
    ]
    if tunnel_part:
        lines += tunnel_part
    else:
        lines += ["# Kiosque: API service (its port is left as it is)", f"/ip service set {service} disabled=no"]
        if options.restrict_service and source:
            lines.append(allow_on_service(service, address_prefix(source), restrict_open=True))
    lines += [
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
    lines += pages_part or []
    lines.append(f":put {script_string(f'Kiosque: {router.name} OK')}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SetupScript:
    """A generated script with the password it gives the `kiosque` user, and its sealed form."""

    script: str
    password: str
    options: ScriptOptions
    token: str
    pages_link: str  # the one-time link's token, in the script ("" when the owner keeps their pages)


def tunnel_part(router: Router) -> list[str]:
    """A tunnelled router's WireGuard lines (its private key is in them); KitError where it cannot work."""
    why = router_service.tunnel_unavailable(router)
    if why:
        raise KitError(why)
    tunnel.assign(router)
    settings = tunnel.hub()
    return tunnel_lines(
        private_key=router.tunnel_private_key, address=router_interface(settings.network, router.tunnel_address),
        hub_public_key=tunnel.hub_keys().public, hub_host=settings.endpoint.host, hub_port=settings.endpoint.port,
        hub_address=settings.address.ip, service="api-ssl" if router.use_tls else "api", api_ports=(router.port,),
    )


def _setup(router: Router, password: str, options: ScriptOptions, pages_link: str) -> SetupScript:
    lines = tunnel_part(router) if router.tunnelled else None
    script = render_script(router, password, options, kiosque_host=public_host(), source=source_address(router),
                           tunnel_part=lines, pages_part=pages_lines(router, pages_link) if pages_link else None)
    token = crypto.encrypt(json.dumps({"router": router.id, "password": password,
                                       "http_pap": list(options.http_pap_profiles),
                                       "restrict_service": options.restrict_service,
                                       "keep_own_pages": options.keep_own_pages, "pages_link": pages_link}))
    return SetupScript(script=script, password=password, options=options, token=token, pages_link=pages_link)


def new_setup(router: Router, options: ScriptOptions) -> SetupScript:
    """Draw a new password for the `kiosque` user and a new page link, and write the script that uses them."""
    password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))
    pages_link = "" if options.keep_own_pages else hotspot_pages.issue_link(router)
    db.session.commit()
    return _setup(router, password, options, pages_link)


def reopen_setup(router: Router, token: str) -> SetupScript:
    """The script a sealed token stands for, for this router only."""
    try:
        sealed = json.loads(crypto.decrypt(token))
    except (crypto.SecretUnreadable, ValueError):
        sealed = None
    if not isinstance(sealed, dict) or sealed.get("router") != router.id or "pages_link" not in sealed:
        raise KitError(_("Ce script n'est plus valable : générez-en un nouveau."))
    options = ScriptOptions(http_pap_profiles=tuple(sealed["http_pap"]),
                            restrict_service=bool(sealed["restrict_service"]),
                            keep_own_pages=bool(sealed["keep_own_pages"]))
    return _setup(router, sealed["password"], options, sealed["pages_link"])


def adopt_credentials(router: Router, setup: SetupScript) -> router_service.ConnectionReport:
    """Switch the router to the `kiosque` user, only if the router accepts it (the script ran).

    The same test reads the profiles' `html-directory`: once Kiosque's pages are in place, the
    page link is closed.
    """
    router.api_username, router.api_password = API_USER, setup.password
    report = router_service.test_connection(router)  # commits the new credentials when it succeeds
    if not report.ok:
        db.session.rollback()
    elif pages_in_place(router):
        hotspot_pages.close_link(router)
        db.session.commit()
    return report


# -- the hotspot login page and its buttons ----------------------------------------------------------


def hotspot_html(text: str) -> Markup:
    """HTML-escaped text for a page the router serves: `$` too, or the router would read `$(...)`."""
    return Markup(str(escape(text)).replace("$", "&#36;"))


def _public_url(endpoint: str, **values) -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + url_for(endpoint, **values)


def page_url(pages_link: str, name: str) -> str:
    """Where the router fetches one file of its page set."""
    return _public_url("public.hotspot_page", token=pages_link, name=name)


def buy_url(router: Router, plan: Plan) -> str:
    """The router's plans page with this plan chosen, and the hotspot variables the router fills in."""
    return _public_url("shop.plans", slug=router.slug) + HOTSPOT_QUERY + f"&plan_id={plan.id}"


def retrieve_url() -> str:
    """The retrieval page, told which client asks (its limits are the client's own, not the hotspot's)."""
    return _public_url("shop.retrieve") + RETRIEVE_QUERY


def login_page(router: Router, lang: str = "fr") -> str:
    """The hotspot login.html: the owner's download and the first page of the set the script fetches."""
    with force_locale(lang):
        return render_template("owner/kit/hotspot_login.html", router=router, lang=lang,
                               plan_links=plan_links(router), retrieve_url=retrieve_url())


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
