"""Routers: settings, connection test and what the router told us."""

import re
from contextlib import closing
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import format_datetime, format_decimal
from flask_babel import gettext as _
from sqlalchemy import select

from portal import formatting
from portal.extensions import db
from portal.models import Order, Owner, Router, RouterConnection, utcnow
from portal.routeros import credentials, mikhmon
from portal.routeros.client import (
    NameCollisions,
    RouterAddress,
    RouterAuthFailed,
    RouterClient,
    RouterCommandError,
    RouterConnectionLost,
    RouterError,
    RouterSlow,
    RouterTimeout,
    RouterTLSError,
    RouterUnreachable,
    has_control_character,
)
from portal.routeros.egress import EgressPolicy, EgressRefused
from portal.services import hotspot_pages, tunnel
from portal.services.rows import commit_retrying
from portal.services.tunnel import TunnelHealth
from portal.wireguard import AddressPoolExhausted

# Fields an owner edits on the router form; the API password is handled apart (blank keeps it).
EDITABLE_FIELDS = (
    "name", "connection", "host", "port", "use_tls", "tls_verify", "api_username", "hotspot_server", "dns_name",
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


def egress_policy(connection: RouterConnection = RouterConnection.DIRECT) -> EgressPolicy:
    """The egress policy for routers reached this way, built by the app factory (portal/config.py).

    Direct: the operator's policy, Kiosque's tunnel network excluded. Tunnel: that network only.
    """
    key = "kiosque.tunnel_egress" if connection == RouterConnection.TUNNEL else "kiosque.router_egress"
    return current_app.extensions[key]


def router_address(router: Router) -> RouterAddress:
    """Where and how Kiosque reaches this router's API, under the egress policy of its connection.

    Through the tunnel, the address is the one Kiosque gave the router, never one an owner typed.
    """
    return RouterAddress(
        host=router.api_host, port=router.port, username=router.api_username, password=router.api_password,
        use_tls=router.use_tls, tls_verify=router.tls_verify, timeout=current_app.config["ROUTER_TIMEOUT"],
        policy=egress_policy(router.connection),
    )


def owned_router(owner: Owner, router_id: int) -> Router | None:
    """The router if this owner has it; None otherwise (the view answers 404 either way)."""
    return db.session.scalar(select(Router).where(Router.id == router_id, Router.owner_id == owner.id))


# Fewer codes than this would run out on a busy hotspot, and a client could find a valid voucher
# by trying codes on the login page (RouterOS does not slow repeated attempts down).
MIN_NAME_SPACE = 100_000


def save_router(owner: Owner, router: Router | None, values: dict, api_password: str) -> Router:
    """Create or update a router from validated form values.

    A router put on the tunnel gets its tunnel address and key pair in the same commit; when
    another router took the same address meanwhile, the save is made again with the next one.
    """
    return commit_retrying(lambda: stage_router(owner, router, values, api_password))


def stage_router(owner: Owner, router: Router | None, values: dict, api_password: str, *,
                 password_required: bool = True) -> Router:
    """`save_router`'s checks and changes, left in the caller's transaction.

    `password_required`: a new router may come without its API password (a settings file
    without its secrets); the owner types it on the router form.
    """
    possible = credentials.name_space(values["user_mode"], values["name_length"], values["charset"])
    if possible < MIN_NAME_SPACE:
        raise RouterSettingsError("name_length", _(
            "Ces réglages ne donnent que %(count)s codes différents : ils s'épuiseraient vite, et un client "
            "pourrait trouver un code valable en essayant. Allongez le code ou prenez plus de caractères "
            "(au moins %(minimum)s codes possibles).",
            count=format_decimal(possible), minimum=format_decimal(MIN_NAME_SPACE)))
    if router is None and not api_password and password_required:
        raise RouterSettingsError("api_password", _("Le mot de passe de l'API est obligatoire."))
    tunnelled = values["connection"] == RouterConnection.TUNNEL
    if tunnelled:
        check_tunnel(router, values["port"], values["api_username"], api_password)
    else:
        check_destination(values["host"], values["port"], values["api_username"], api_password)
    clash = db.session.scalar(select(Router.id).where(Router.owner_id == owner.id, Router.name == values["name"]))
    if clash is not None and (router is None or clash != router.id):
        raise RouterSettingsError("name", _("Vous avez déjà un routeur avec ce nom."))
    target = router or Router(owner=owner)
    db.session.add(target)
    for name in EDITABLE_FIELDS:
        setattr(target, name, values[name])
    if api_password or target.api_password is None:
        target.api_password = api_password
    if tunnelled:
        try:
            tunnel.stage_identity(target, tunnel.hub())
        except AddressPoolExhausted:
            db.session.rollback()
            raise RouterSettingsError("connection", _(
                "Le tunnel de Kiosque n'a plus d'adresse libre : prévenez l'exploitant de ce service.")) from None
    return target


def check_tunnel(router: Router | None, port: int, api_username: str, api_password: str) -> None:
    """Refuse the tunnel where it cannot work, and what every connection refuses."""
    why = tunnel_unavailable(router)
    if why:
        raise RouterSettingsError("connection", why)
    check_credentials_and_port(port, api_username, api_password)


def tunnel_unavailable(router: Router | None) -> str | None:
    """Why this router cannot go on Kiosque's tunnel (off on this server, or RouterOS 6), or None."""
    if tunnel.hub() is None:
        return tunnel_off_message()
    if router is not None and not tunnel.supports_tunnel(router.ros_version):
        return _("RouterOS %(version)s n'a pas WireGuard (il faut RouterOS 7.1 ou plus récent) : gardez une "
                 "connexion directe, en api-ssl si le routeur est joignable depuis Internet.",
                 version=router.ros_version)
    return None


def tunnel_off_message() -> str:
    return _("Le tunnel Kiosque n'est pas activé sur ce serveur. L'exploitant l'active en réglant "
             "PORTAL_VPN_ENDPOINT et PORTAL_VPN_NETWORK (docs/deployment.md, « WireGuard hub »).")


def check_destination(host: str, port: int, api_username: str, api_password: str) -> None:
    """Refuse, as the connection would, what the egress policy refuses; RouterSettingsError names the field.

    A name is looked up (within the router timeout) and refused if any address it resolves to
    is. A name that does not resolve (yet) is kept: the connection test will say so, and every
    connection checks the addresses again.
    """
    check_credentials_and_port(port, api_username, api_password)
    try:
        egress_policy().resolve(host, port, current_app.config["ROUTER_TIMEOUT"])
    except EgressRefused:
        raise RouterSettingsError("host", _(
            "Adresse refusée : Kiosque ne se connecte qu'aux routeurs joignables à une adresse publique, "
            "ou dans un réseau autorisé par l'exploitant de ce service.")) from None
    except OSError:
        pass


def check_credentials_and_port(port: int, api_username: str, api_password: str) -> None:
    """What every connection refuses whatever the address: control characters, a port not allowed."""
    for field_name, value in (("api_username", api_username), ("api_password", api_password)):
        if has_control_character(value):
            raise RouterSettingsError(field_name,
                                      _("Caractère de contrôle refusé (retour à la ligne, tabulation…)."))
    policy = egress_policy()
    if not policy.allows_port(port):
        raise RouterSettingsError("port", _("Port refusé : Kiosque ne se connecte aux routeurs que sur les ports "
                                            "%(ports)s.", ports=policy.describe_ports()))


def deletion_refused(router: Router) -> str | None:
    """Why the router cannot be deleted, or None: one that has sold online keeps its history."""
    if db.session.scalar(select(Order.id).where(Order.router_id == router.id).limit(1)) is not None:
        return _("Ce routeur a des ventes en ligne : son historique est gardé. Retirez-lui plutôt ses forfaits "
                 "et ses comptes de paiement.")
    return None


def delete_router(router: Router) -> None:
    """Delete a router with its plans and tickets, unless `deletion_refused` says why not."""
    if (refusal := deletion_refused(router)) is not None:
        raise RouterSettingsError("delete", refusal)
    db.session.delete(router)
    db.session.commit()


def failure_facts(exc: RouterError) -> dict[str, str]:
    """What went wrong with a router call, as plain values a timeline line or an email is written from."""
    if isinstance(exc, RouterAuthFailed):
        return {"failure": "auth"}
    if isinstance(exc, RouterTLSError):
        return {"failure": "tls"}
    if isinstance(exc, (RouterConnectionLost, RouterSlow)):  # it answered: the address and port are right
        return {"failure": "lost"}
    if isinstance(exc, (RouterUnreachable, RouterTimeout)):
        return {"failure": "unreachable"}
    if isinstance(exc, RouterCommandError):
        return {"failure": "command", "router_message": exc.router_message}
    if isinstance(exc, NameCollisions):
        return {"failure": "names"}
    return {"failure": "other"}


def describe_router_error(exc: RouterError) -> str:
    """A sentence an owner can act on, in their language, for any router failure."""
    return formatting.router_failure(**failure_facts(exc))


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

    profiles = [{"name": p.get("name", ""), "dns_name": p.get("dns-name", ""), "login_by": p.get("login-by", ""),
                 "html_directory": p.get("html-directory", "")} for p in server_profiles]
    before = (router.facts or {}).get("html_directories_before", {})
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
        "server_profiles": profiles,
        # Where each profile's pages were before Kiosque's, for the kit's way back.
        "html_directories_before": hotspot_pages.remembered_directories(before, profiles),
        "user_profiles": [{"name": p.get("name", ""), "on_login": p.get("on-login", "")} for p in user_profiles],
    }
    used = server_profiles_in_use(router)
    router.login_by = ",".join(sorted({m for p in used for m in p["login_by"].split(",") if m}))
    if not router.dns_name:  # the buyer's login link is built from it: held to the form's check
        router.dns_name = next((p["dns_name"] for p in used if p["dns_name"] and is_host(p["dns_name"])), "")
    db.session.commit()
    return ConnectionReport(warnings=router_warnings(router))


def server_profiles_in_use(router: Router) -> list[dict]:
    """The server profiles of the hotspot server(s) this router sells on."""
    servers = router.facts.get("servers", [])
    if router.hotspot_server != "all":
        servers = [s for s in servers if s["name"] == router.hotspot_server]
    names = {s["profile"] for s in servers}
    return [p for p in router.facts.get("server_profiles", []) if p["name"] in names]


def router_warnings(router: Router) -> list[str]:
    """What the owner should fix or know: the worker's last check, the last connection test's facts."""
    warnings = tunnel_warnings(router)
    if not router.api_password:
        warnings.append(_("Le mot de passe de l'API n'est pas encore saisi (réglages importés sans secrets) : "
                          "tapez-le dans « Modifier »."))
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
    unusable_dns_names = [p["dns_name"] for p in server_profiles_in_use(router)
                          if p["dns_name"] and not is_host(p["dns_name"])]
    if not router.dns_name and unusable_dns_names:
        warnings.append(_("Le nom DNS du profil hotspot lu sur le routeur n'est pas un nom d'hôte valide : Kiosque "
                          "ne l'utilise pas. Corrigez-le sur le routeur, ou saisissez le nom DNS dans les réglages."))
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


def tunnel_warnings(router: Router) -> list[str]:
    """What the hub's last report says of a tunnelled router's tunnel, when it is not up."""
    state = tunnel.health(router)
    if state is None or state == TunnelHealth.UP:
        return []
    if state == TunnelHealth.OFF:
        return [_("Ce routeur passe par le tunnel Kiosque, qui n'est plus activé sur ce serveur : Kiosque ne peut "
                  "pas le joindre. Prévenez l'exploitant, ou passez le routeur en connexion directe.")]
    if tunnel.needs_identity(router, tunnel.hub()):
        return [_("Le tunnel de Kiosque a changé de réseau : générez et exécutez de nouveau le script "
                  "d'installation sur le routeur.")]
    if state == TunnelHealth.HUB_SILENT:
        return [_("Le serveur de Kiosque ne rend plus compte de l'état des tunnels : celui de ce routeur est "
                  "inconnu. Votre routeur n'est pas en cause ; prévenez l'exploitant si cela dure.")]
    if state == TunnelHealth.WAITING:
        return [_("Tunnel pas encore établi : exécutez le script d'installation sur le routeur (RouterOS 7.1 ou "
                  "plus récent, avec un accès à Internet).")]
    return [_("Tunnel coupé : pas d'échange avec le routeur depuis le %(when)s. Vérifiez qu'il est allumé et "
              "qu'il a Internet.", when=format_datetime(router.tunnel_handshake_at, "short"))]
