"""Routers: settings, connection test and what the router told us."""

import re
from contextlib import closing
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import format_datetime, format_decimal
from flask_babel import gettext as _
from sqlalchemy import select

from portal.extensions import db
from portal.models import Order, Owner, Router, utcnow
from portal.routeros import credentials, mikhmon
from portal.routeros.client import (
    NameCollisions,
    RouterAddress,
    RouterAuthFailed,
    RouterClient,
    RouterCommandError,
    RouterError,
    RouterTimeout,
    RouterTLSError,
    RouterUnreachable,
    has_control_character,
)
from portal.routeros.egress import EgressPolicy, EgressRefused

# Fields an owner edits on the router form; the API password is handled apart (blank keeps it).
EDITABLE_FIELDS = (
    "name", "host", "port", "use_tls", "tls_verify", "api_username", "hotspot_server", "dns_name",
    "user_mode", "name_length", "charset", "prefix", "currency", "country", "notify_email",
)
# A router address or hotspot DNS name: an IP address or a host name, nothing that could end the
# host part of a URL (the buyer's login link is built from the DNS name).
HOST_PATTERN = r"^[A-Za-z0-9.\-:\[\]]+\Z"
HOST_MAX_LENGTH = 253


def is_host(value: str) -> bool:
    """Whether ``value`` passes the router form's check for an address or DNS name."""
    return len(value) <= HOST_MAX_LENGTH and re.match(HOST_PATTERN, value) is not None


class RouterSettingsError(ValueError):
    """The settings cannot be saved; `field` names the form field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass
class ConnectionReport:
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def egress_policy() -> EgressPolicy:
    """The operator's egress policy for router connections, built by the app factory."""
    return current_app.extensions["kiosque.router_egress"]


def router_address(router: Router) -> RouterAddress:
    """Where and how Kiosque reaches this router's API, under the operator's egress policy."""
    return RouterAddress(
        host=router.host, port=router.port, username=router.api_username, password=router.api_password,
        use_tls=router.use_tls, tls_verify=router.tls_verify, timeout=current_app.config["ROUTER_TIMEOUT"],
        policy=egress_policy(),
    )


def owned_router(owner: Owner, router_id: int) -> Router | None:
    """The router if this owner has it; None otherwise (the view answers 404 either way)."""
    return db.session.scalar(select(Router).where(Router.id == router_id, Router.owner_id == owner.id))


# Fewer codes than this would run out on a busy hotspot, and a client could find a valid voucher
# by trying codes on the login page (RouterOS does not slow repeated attempts down).
MIN_NAME_SPACE = 100_000


def save_router(owner: Owner, router: Router | None, values: dict, api_password: str) -> Router:
    """Create or update a router from validated form values."""
    possible = credentials.name_space(values["user_mode"], values["name_length"], values["charset"])
    if possible < MIN_NAME_SPACE:
        raise RouterSettingsError("name_length", _(
            "Ces réglages ne donnent que %(count)s codes différents : ils s'épuiseraient vite, et un client "
            "pourrait trouver un code valable en essayant. Allongez le code ou prenez plus de caractères "
            "(au moins %(minimum)s codes possibles).",
            count=format_decimal(possible), minimum=format_decimal(MIN_NAME_SPACE)))
    clash = db.session.scalar(
        select(Router.id).where(Router.owner_id == owner.id, Router.name == values["name"])
    )
    if clash is not None and (router is None or clash != router.id):
        raise RouterSettingsError("name", _("Vous avez déjà un routeur avec ce nom."))
    if router is None and not api_password:
        raise RouterSettingsError("api_password", _("Le mot de passe de l'API est obligatoire."))
    check_destination(values["host"], values["port"], values["api_username"], api_password)
    if router is None:
        router = Router(owner=owner)
        db.session.add(router)
    for name in EDITABLE_FIELDS:
        setattr(router, name, values[name])
    if api_password:
        router.api_password = api_password
    db.session.commit()
    return router


def check_destination(host: str, port: int, api_username: str, api_password: str) -> None:
    """Refuse, as the connection would, what the egress policy refuses; RouterSettingsError names the field.

    A name is looked up (within the router timeout) and refused if any address it resolves to
    is. A name that does not resolve (yet) is kept: the connection test will say so, and every
    connection checks the addresses again.
    """
    for field_name, value in (("api_username", api_username), ("api_password", api_password)):
        if has_control_character(value):
            raise RouterSettingsError(field_name,
                                      _("Caractère de contrôle refusé (retour à la ligne, tabulation…)."))
    policy = egress_policy()
    if not policy.allows_port(port):
        raise RouterSettingsError("port", _("Port refusé : Kiosque ne se connecte aux routeurs que sur les ports "
                                            "%(ports)s.", ports=policy.describe_ports()))
    try:
        policy.resolve(host, port, current_app.config["ROUTER_TIMEOUT"])
    except EgressRefused:
        raise RouterSettingsError("host", _(
            "Adresse refusée : Kiosque ne se connecte qu'aux routeurs joignables à une adresse publique, "
            "ou dans un réseau autorisé par l'exploitant de ce service.")) from None
    except OSError:
        pass


def delete_router(router: Router) -> None:
    """Delete a router with its plans and tickets; one that has sold online keeps its history."""
    if db.session.scalar(select(Order.id).where(Order.router_id == router.id).limit(1)) is not None:
        raise RouterSettingsError("delete", _("Ce routeur a des ventes en ligne : son historique est gardé. "
                                              "Retirez-lui plutôt ses forfaits et ses comptes de paiement."))
    db.session.delete(router)
    db.session.commit()


def describe_router_error(exc: RouterError) -> str:
    """A French sentence an owner can act on, for any router failure."""
    if isinstance(exc, RouterAuthFailed):
        return _("Le routeur refuse l'utilisateur ou le mot de passe de l'API.")
    if isinstance(exc, RouterTLSError):
        return _("La connexion chiffrée (api-ssl) a échoué : certificat refusé ou non reconnu.")
    if isinstance(exc, (RouterUnreachable, RouterTimeout)):
        # One sentence for a closed port, a silent one, a service that is not RouterOS and an
        # address the egress policy refuses: the test must not tell them apart (port scanning).
        return _(
            "Kiosque n'a pas pu ouvrir de session API avec ce routeur : vérifiez l'adresse, le port, "
            "le pare-feu et que le service API est activé (/ip service)."
        )
    if isinstance(exc, RouterCommandError):
        return _("Le routeur a refusé la commande : %(message)s", message=exc.router_message)
    if isinstance(exc, NameCollisions):
        return _("Plus aucun code libre avec les réglages des tickets de ce routeur : allongez le code ou "
                 "prenez plus de caractères.")
    return _("Erreur de communication avec le routeur.")


def test_connection(router: Router) -> ConnectionReport:
    """Ask the router who it is and how its hotspot is set up; keep those facts on the router."""
    try:
        with closing(RouterClient(router_address(router))) as client:
            facts = client.facts()
            servers = client.hotspot_servers()
            server_profiles = client.server_profiles()
            user_profiles = client.user_profiles()
    except RouterError as exc:
        return ConnectionReport(error=describe_router_error(exc))

    router.identity = facts.identity
    router.ros_version = facts.version
    router.last_contact_at = utcnow()
    router.facts = {
        "board_name": facts.board_name,
        "uptime": facts.uptime,
        "date": facts.date,
        "time": facts.time,
        "time_zone": facts.time_zone,
        "servers": [{"name": s.get("name", ""), "profile": s.get("profile", "")} for s in servers],
        "server_profiles": [
            {"name": p.get("name", ""), "dns_name": p.get("dns-name", ""), "login_by": p.get("login-by", "")}
            for p in server_profiles
        ],
        "user_profiles": [{"name": p.get("name", ""), "on_login": p.get("on-login", "")} for p in user_profiles],
    }
    used = _server_profiles_in_use(router)
    router.login_by = ",".join(sorted({m for p in used for m in p["login_by"].split(",") if m}))
    if not router.dns_name:  # the buyer's login link is built from it: held to the form's check
        router.dns_name = next((p["dns_name"] for p in used if p["dns_name"] and is_host(p["dns_name"])), "")
    db.session.commit()
    return ConnectionReport(warnings=router_warnings(router))


def _server_profiles_in_use(router: Router) -> list[dict]:
    """The server profiles of the hotspot server(s) this router sells on."""
    servers = router.facts.get("servers", [])
    if router.hotspot_server != "all":
        servers = [s for s in servers if s["name"] == router.hotspot_server]
    names = {s["profile"] for s in servers}
    return [p for p in router.facts.get("server_profiles", []) if p["name"] in names]


def router_warnings(router: Router) -> list[str]:
    """What the owner should fix or know: the worker's last check, the last connection test's facts."""
    warnings = []
    if router.down_since:
        warnings.append(_("Injoignable depuis le %(when)s : les tickets payés entre-temps seront créés à son retour.",
                          when=format_datetime(router.down_since, "short")))
    if not router.facts:
        return warnings
    server_names = [s["name"] for s in router.facts.get("servers", [])]
    if router.hotspot_server != "all" and router.hotspot_server not in server_names:
        warnings.append(
            _("Le serveur hotspot « %(name)s » n'existe pas sur ce routeur (serveurs : %(names)s).",
              name=router.hotspot_server, names=", ".join(server_names) or "—")
        )
    unusable_dns_names = [p["dns_name"] for p in _server_profiles_in_use(router)
                          if p["dns_name"] and not is_host(p["dns_name"])]
    if not router.dns_name and unusable_dns_names:
        warnings.append(_("Le nom DNS du profil hotspot lu sur le routeur n'est pas un nom d'hôte valide : Kiosque "
                          "ne l'utilise pas. Corrigez-le sur le routeur, ou saisissez le nom DNS dans les réglages."))
    if router.login_by and "http-pap" not in router.login_by.split(","):
        warnings.append(
            _("Le profil du serveur hotspot n'autorise pas http-pap (login-by : %(login_by)s) : la "
              "connexion automatique par le navigateur passera par la page login.html générée par Kiosque.",
              login_by=router.login_by)
        )
    stock_v3 = [
        p["name"] for p in router.facts.get("user_profiles", [])
        if mikhmon.needs_ros7_warning(router.ros_version, p["on_login"])
    ]
    if stock_v3:
        warnings.append(
            _("RouterOS %(version)s avec les scripts de profil Mikhmon v3 d'origine (%(profiles)s) : "
              "depuis RouterOS 7.10 le format de date a changé et les tickets n'expirent plus. "
              "Utilisez une version de Mikhmon adaptée à RouterOS 7.",
              version=router.ros_version, profiles=", ".join(stock_v3))
        )
    return warnings
