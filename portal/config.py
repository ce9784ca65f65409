"""Configuration: defaults here, then `PORTAL_*` environment variables, read once by the factory."""

import json
import secrets
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path

from cryptography.fernet import Fernet
from flask import Flask

from portal.payments import api_url_defaults, phones
from portal.routeros.egress import DEFAULT_PORTS, EgressPolicy
from portal.wireguard import DEFAULT_INTERFACE, HubSettings, WireGuardError


class ConfigurationError(RuntimeError):
    """The app cannot start safely with this configuration."""


DEFAULTS = {
    # "production" refuses to start without explicit secrets; "development" generates them.
    "ENV": "production",
    "SECRET_KEY": None,
    "ENCRYPTION_KEY": None,
    "SQLALCHEMY_DATABASE_URI": None,  # SQLite under instance/ when unset
    # Connections idle for a while are checked before use (extensions.PING_AFTER_IDLE).
    "SQLALCHEMY_ENGINE_OPTIONS": {},
    "PUBLIC_URL": "http://127.0.0.1:5000",
    "LOG_FORMAT": "text",  # or "json": one object per line, for log collectors
    "LOG_LEVEL": "INFO",
    "ROUTER_TIMEOUT": 5.0,
    # Where router connections may go (docs/deployment.md#egress-policy). Public addresses only,
    # unless listed here: comma-separated CIDR networks such as the VPN range routers connect
    # through, or the LAN of a single-owner install.
    "ROUTER_ALLOWED_NETWORKS": "",
    # The ports router connections may use, comma-separated, ranges allowed ("8728,8729,18728-18729").
    "ROUTER_ALLOWED_PORTS": DEFAULT_PORTS,
    # Kiosque's WireGuard hub, for routers behind carrier NAT (docs/deployment.md#wireguard-hub). Off
    # unless both the public endpoint (host:port routers dial) and the tunnel network are set; the
    # network has no default, since any would collide with some router's LAN. The listen port
    # defaults to the endpoint's.
    "VPN_ENDPOINT": "",
    "VPN_NETWORK": "",
    "VPN_INTERFACE": DEFAULT_INTERFACE,
    "VPN_LISTEN_PORT": None,
    # Connection tests per owner ("Tester la connexion" and the setup kit's confirmation).
    "ROUTER_TEST_RATE_LIMIT": "5 per minute;30 per hour",
    "PROVIDER_TIMEOUT": 10.0,
    # Seconds a second submit of the same buy form (a double tap) waits for the first one's checkout
    # link: a checkout takes up to two provider calls.
    "CHECKOUT_WAIT": 20,
    # Only the demo (sandbox/) sets it: the page playing buyers' phones, linked from the page that
    # waits for a payment to be approved on the phone.
    "DEMO_PHONE_URL": "",
    "ORDER_POLL_AFTER": 3,  # seconds without news before the order page asks the provider itself
    # Seconds without news before a failed order that may still be paid late (it has a payment at
    # the provider and is younger than ORDER_TTL) is asked about again, by its page or the worker.
    "FAILED_ORDER_POLL_AFTER": 60,
    # The country (ISO 3166 code) whose national numbers buyers type when no network says otherwise
    # (hosted-page providers, retrieval); numbers with their country code are read as such anywhere.
    "PHONE_COUNTRY": "bj",
    "PROVIDER_CHECK_GAP": 1,  # seconds: whatever asks (page, return), one order's provider at most this often
    # The worker (seconds): sweep interval; quiet time before it polls a provider; how long an
    # order may stay unpaid; when a paid order without ticket alerts the owner; router checks.
    "WORKER_INTERVAL": 5,
    # A paid order being provisioned is left alone by others this long (then a crashed claim lapses);
    # more than two router calls' worth, so a holder never loses it in the middle of one.
    "ORDER_CLAIM_SECONDS": 60,
    "WORKER_POLL_AFTER": 30,
    "ORDER_TTL": 2 * 3600,
    "STUCK_ORDER_ALERT_AFTER": 600,
    "ROUTER_CHECK_EVERY": 60,
    "ROUTER_DOWN_ALERT_AFTER": 60,
    # The worker's router work: threads for routers that answer, for the others, and how long a
    # sweep waits for it (what is still running then finishes while the next sweeps go on).
    "WORKER_ROUTER_THREADS": 8,
    "WORKER_SLOW_ROUTER_THREADS": 2,
    "WORKER_SWEEP_BUDGET": 10,
    "MAIL_SERVER": "localhost",
    "MAIL_PORT": 25,
    "MAIL_DEFAULT_SENDER": "kiosque@localhost",
    "MAIL_USE_TLS": False,  # STARTTLS on MAIL_PORT; the server's certificate is verified
    "MAIL_USE_SSL": False,  # TLS from the start (usually port 465)
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_TIMEOUT": 10.0,  # seconds, for each exchange with the mail server
    **api_url_defaults(),  # <PROVIDER>_API_URL, <PROVIDER>_<ENVIRONMENT>_API_URL: each provider's API
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_HEADERS_ENABLED": True,
    "LOGIN_RATE_LIMIT": "10 per minute",
    "BABEL_DEFAULT_LOCALE": "fr",
    # Days of the sales dashboard, and dates on pages, are in this time zone.
    "TIMEZONE": "Africa/Porto-Novo",
    "BABEL_DEFAULT_TIMEZONE": "Africa/Porto-Novo",
    "LANGUAGES": ["fr", "en"],
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    # An owner's session ends after this many seconds without a visit (each page renews it), and
    # at once everywhere on sign-out or a new password. Kiosque sets no remember-me cookie; were
    # one ever set, it would last no longer.
    "PERMANENT_SESSION_LIFETIME": 12 * 3600,
    "REMEMBER_COOKIE_DURATION": 12 * 3600,
    "PASSWORD_RESET_MAX_AGE": 3600,  # seconds a password reset link works (once)
    "EMAIL_CHANGE_MAX_AGE": 24 * 3600,  # seconds the link confirming a new email address works (once)
    # Owners who chose a daily summary get the day before's from this hour on (local, TIMEZONE).
    "DAILY_SUMMARY_HOUR": 7,
    # Reset requests: per address, and per email address asked for (whether an owner has it or not).
    "PASSWORD_RESET_RATE_LIMIT": "10 per hour",
    "PASSWORD_RESET_EMAIL_RATE_LIMIT": "3 per hour",
    # Per owner, the settings page's email and password changes together: each checks the current password.
    "ACCOUNT_CHANGE_RATE_LIMIT": "10 per hour",
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    "TRUSTED_PROXIES": 0,  # reverse proxies in front (nginx: 1), whose X-Forwarded-* headers count
    "MAX_CONTENT_LENGTH": 64 * 1024,  # no form or provider callback is anywhere near this
    # Buyer limits (portal/blueprints/shop.py). A whole hotspot shares one public address, so each
    # client has its own limits and the address only a ceiling for fifty busy clients and more.
    # Refused input counts against none of them.
    "BUY_RATE_LIMIT": "5 per minute",  # per hotspot client (router, and the client's MAC or IP)
    "BUY_ADDRESS_RATE_LIMIT": "300 per minute",  # per public address
    "RETRIEVE_RATE_LIMIT": "5 per minute",  # per reference typed, and per phone number typed
    "RETRIEVE_CLIENT_RATE_LIMIT": "5 per minute",  # per hotspot client, when the page knows it
    "RETRIEVE_ADDRESS_RATE_LIMIT": "300 per minute",  # per public address
    "ORDER_PAGE_RATE_LIMIT": "180 per minute",  # per order: its page and its polled fragment together
    # Per address: a router's kit script fetches its page set (nine files) through a one-time link.
    "HOTSPOT_PAGES_RATE_LIMIT": "60 per minute",
}


def load(app: Flask, overrides: dict | None) -> None:
    """Fill app.config from defaults, the environment and the caller's overrides, then check it."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("PORTAL")
    if overrides:
        app.config.update(overrides)
    if app.config["ORDER_CLAIM_SECONDS"] <= 2 * app.config["ROUTER_TIMEOUT"]:
        raise ConfigurationError("PORTAL_ORDER_CLAIM_SECONDS must exceed twice PORTAL_ROUTER_TIMEOUT: a claim "
                                 "must outlast a router call and its one retry.")
    if not phones.known_country(app.config["PHONE_COUNTRY"]):
        raise ConfigurationError(f"PORTAL_PHONE_COUNTRY {app.config['PHONE_COUNTRY']!r} is not a country code "
                                 "such as bj, ci or sn.")
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(app.instance_path) / 'kiosque.db'}"
    if app.config["ENV"] == "production":
        missing = [k for k in ("SECRET_KEY", "ENCRYPTION_KEY") if not app.config.get(k)]
        if missing:
            names = ", ".join(f"PORTAL_{k}" for k in missing)
            raise ConfigurationError(f"Refusing to start in production without {names}.")
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
    else:
        _use_development_secrets(app)


def tunnel_hub(app: Flask) -> HubSettings | None:
    """The WireGuard hub's settings (PORTAL_VPN_*), None when the feature is off; ConfigurationError."""
    endpoint, network = (str(app.config[key] or "").strip() for key in ("VPN_ENDPOINT", "VPN_NETWORK"))
    if not endpoint and not network:
        return None
    if not (endpoint and network):
        missing = "PORTAL_VPN_NETWORK" if endpoint else "PORTAL_VPN_ENDPOINT"
        raise ConfigurationError(f"The WireGuard hub needs both PORTAL_VPN_ENDPOINT and PORTAL_VPN_NETWORK: "
                                 f"set {missing}, or neither to turn the hub off.")
    try:
        return HubSettings.from_settings(endpoint, network, app.config["VPN_INTERFACE"], app.config["VPN_LISTEN_PORT"])
    except (WireGuardError, ValueError) as exc:
        raise ConfigurationError(f"PORTAL_VPN_*: {exc}") from None


def router_egress(app: Flask, hub: HubSettings | None = None) -> EgressPolicy:
    """The egress policy for the addresses owners type, or ConfigurationError.

    From ROUTER_ALLOWED_NETWORKS and ROUTER_ALLOWED_PORTS; the hub's tunnel network is excluded
    whatever they say: only Kiosque gives out tunnel addresses, each to its own router.
    """
    try:
        policy = EgressPolicy.from_settings(app.config["ROUTER_ALLOWED_NETWORKS"], app.config["ROUTER_ALLOWED_PORTS"])
    except ValueError as exc:
        raise ConfigurationError(f"PORTAL_ROUTER_ALLOWED_NETWORKS or PORTAL_ROUTER_ALLOWED_PORTS: {exc}") from None
    return replace(policy, excluded=(hub.network,)) if hub else policy


def tunnel_egress(direct: EgressPolicy, hub: HubSettings | None) -> EgressPolicy:
    """The egress policy for tunnelled routers: the tunnel network only, not the hub itself, the same ports.

    With the hub off it allows nothing: a router left on the tunnel cannot be reached anyway.
    """
    if hub is None:
        return EgressPolicy(ports=direct.ports, public=False)
    return EgressPolicy(networks=(hub.network,), ports=direct.ports,
                        excluded=(IPv4Network(f"{hub.address.ip}/32"),), public=False)


def _use_development_secrets(app: Flask) -> None:
    """Keep generated secrets in instance/ so sessions and stored secrets survive restarts."""
    if app.config.get("SECRET_KEY") and app.config.get("ENCRYPTION_KEY"):
        return
    path = Path(app.instance_path) / "secrets.json"
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        stored = {"SECRET_KEY": secrets.token_urlsafe(32), "ENCRYPTION_KEY": Fernet.generate_key().decode()}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored))
        path.chmod(0o600)
    for key, value in stored.items():
        app.config[key] = app.config.get(key) or value
