"""Routers on Kiosque's WireGuard hub, without a tunnel: settings, egress, the router form, addresses and
keys, the router script, the hub's wanted state, its reports, health and alerts.

The tunnel itself (namespaces, wg, the paid path through it) is in test_wireguard_tunnel.py. No test
here opens a connection to a tunnel address: outside the namespaces those tests make, nothing
would answer, and the packets would leave the machine.
"""

import logging
import re
from datetime import timedelta
from ipaddress import IPv4Network
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from portal import create_app
from portal.config import ConfigurationError
from portal.extensions import db, mail
from portal.models import Router, RouterConnection, TunnelHub, utcnow
from portal.routeros.client import RouterClient, RouterRefused
from portal.services import keys, router_health, tunnel, worker
from portal.services import routers as router_service
from portal.services.tunnel import TunnelHealth
from portal.wireguard import STALE_AFTER, KeyPair, PeerState
from tests import routeros_wg
from tests.conftest import SECRETS, page_text, router_values
from tests.factories import make_account, make_owner, make_router

NO_SERVER = SimpleNamespace(host="", port=8728)  # the router form without a sandbox router behind it
NETWORK = "198.51.100.0/24"
ENDPOINT = "hub.example.net:51820"
HUB_ADDRESS = "198.51.100.1"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "VPN_ENDPOINT": ENDPOINT, "VPN_NETWORK": NETWORK, "MAIL_SUPPRESS_SEND": True}


def tunnel_values(**overrides) -> dict:
    """The router form for a router behind carrier NAT: no address to type."""
    return router_values(NO_SERVER, **{"host": "", "port": "8728", "connection": "tunnel", **overrides})


def add_tunnelled_router(browser, **overrides) -> Router:
    response = browser.post("/owner/routers/new", tunnel_values(**overrides))
    assert response.status_code == 302, page_text(response)
    router = db.session.scalar(db.select(Router).order_by(Router.id.desc()))
    SECRETS.add(router.tunnel_private_key)  # the run's log check makes sure it was never logged
    return router


def heard(router: Router, *, handshake_ago: float | None, seen_ago: float = 1.0) -> None:
    """The hub reported this router `seen_ago` seconds ago, its last handshake `handshake_ago` before now."""
    now = utcnow()
    router.tunnel_seen_at = now - timedelta(seconds=seen_ago)
    router.tunnel_handshake_at = None if handshake_ago is None else now - timedelta(seconds=handshake_ago)
    db.session.commit()


# -- settings -----------------------------------------------------------------------------------------


def settings_config(**vpn) -> dict:
    return {"ENV": "testing", "SECRET_KEY": "x", "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SQLALCHEMY_DATABASE_URI": "sqlite://", **vpn}


def test_the_hub_is_off_without_settings_and_configured_with_both():
    assert create_app(settings_config()).extensions["kiosque.tunnel_hub"] is None
    hub = create_app(settings_config(VPN_ENDPOINT="Hub.Example.net:51820", VPN_NETWORK="10.77.0.0/24"))
    settings = hub.extensions["kiosque.tunnel_hub"]
    assert (settings.endpoint.host, settings.endpoint.port, settings.listen_port) == ("hub.example.net", 51820, 51820)
    assert str(settings.address) == "10.77.0.1/24" and settings.interface == "kiosque0"
    moved = create_app(settings_config(VPN_ENDPOINT="[2001:db8::1]:443", VPN_NETWORK="10.77.0.0/16",
                                       VPN_LISTEN_PORT=51820, VPN_INTERFACE="wg-kiosque"))
    settings = moved.extensions["kiosque.tunnel_hub"]
    assert str(settings.endpoint) == "[2001:db8::1]:443" and settings.listen_port == 51820


@pytest.mark.parametrize("vpn, named", [
    ({"VPN_ENDPOINT": ENDPOINT}, "PORTAL_VPN_NETWORK"),
    ({"VPN_NETWORK": NETWORK}, "PORTAL_VPN_ENDPOINT"),
    ({"VPN_ENDPOINT": "hub.example.net", "VPN_NETWORK": NETWORK}, "host:port"),
    ({"VPN_ENDPOINT": 'hub"; /system reboot:51820', "VPN_NETWORK": NETWORK}, "neither an IP address nor a DNS name"),
    ({"VPN_ENDPOINT": "hub.example.net:0", "VPN_NETWORK": NETWORK}, "between 1 and 65535"),
    ({"VPN_ENDPOINT": ENDPOINT, "VPN_NETWORK": "100.64.0.0/24"}, "carrier-grade NAT"),
    ({"VPN_ENDPOINT": ENDPOINT, "VPN_NETWORK": "192.168.88.0/24"}, "default configuration"),
    ({"VPN_ENDPOINT": ENDPOINT, "VPN_NETWORK": "8.8.8.0/24"}, "not private"),
    ({"VPN_ENDPOINT": ENDPOINT, "VPN_NETWORK": NETWORK, "VPN_INTERFACE": "wg0; reboot"}, "interface name"),
    ({"VPN_ENDPOINT": ENDPOINT, "VPN_NETWORK": NETWORK, "VPN_LISTEN_PORT": "many"}, "not a number"),
])
def test_wrong_hub_settings_stop_the_app_at_start(vpn, named):
    with pytest.raises(ConfigurationError) as refused:
        create_app(settings_config(**vpn))
    assert named in str(refused.value)


# -- egress: the tunnel network is Kiosque's alone ----------------------------------------------------


def test_a_router_typed_at_a_tunnel_address_is_refused_at_save(browser):
    taken = add_tunnelled_router(browser, name="Chez Awa")
    for host in (taken.tunnel_address, HUB_ADDRESS, "198.51.100.77"):
        response = browser.post("/owner/routers/new", router_values(NO_SERVER, host=host, port="8728", name="Intrus"))
        assert response.status_code == 422 and "Adresse refusée" in page_text(response), host
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 1


def test_a_stored_direct_router_on_a_tunnel_address_is_never_connected(app, browser, caplog, monkeypatch):
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(logging.getLogger("portal.routeros.client"), "disabled", False)
    # The operator even lists the tunnel network among the allowed ones: direct routers stay out of it.
    app.extensions["kiosque.router_egress"] = create_app(settings_config(
        VPN_ENDPOINT=ENDPOINT, VPN_NETWORK=NETWORK, ROUTER_ALLOWED_NETWORKS=NETWORK)).extensions["kiosque.router_egress"]
    victim = add_tunnelled_router(browser, name="Chez Awa")
    intruder = make_router(make_owner(), host=victim.tunnel_address)  # saved by a path that skipped the form
    with pytest.raises(RouterRefused):
        RouterClient(router_service.router_address(intruder)).facts()
    assert f"{victim.tunnel_address}:8728: connection refused by the egress policy (address)" in caplog.text


def test_a_tunnelled_router_is_reached_at_its_tunnel_address_under_the_tunnel_policy(browser):
    router = add_tunnelled_router(browser)
    address = router_service.router_address(router)
    assert address.host == router.tunnel_address and address.port == 8728
    assert address.policy.allows_address(router.tunnel_address)
    for outside in (HUB_ADDRESS, "127.0.0.1", "41.203.64.10", "10.0.0.1"):  # the hub, loopback, public, LAN
        assert not address.policy.allows_address(outside), outside
    direct = router_service.egress_policy(RouterConnection.DIRECT)
    assert not direct.allows_address(router.tunnel_address) and direct.allows_address("41.203.64.10")


# -- the router form ------------------------------------------------------------------------------------


def test_choosing_the_tunnel_gives_an_address_and_a_key_pair_without_typing_one(browser):
    first = add_tunnelled_router(browser, name="Chez Awa")
    second = add_tunnelled_router(browser, name="Chez Koffi")
    assert (first.tunnel_address, second.tunnel_address) == ("198.51.100.2", "198.51.100.3")
    assert first.host == "" and first.connection == RouterConnection.TUNNEL
    assert KeyPair.from_private(first.tunnel_private_key).public == first.tunnel_public_key
    assert first.tunnel_public_key != second.tunnel_public_key
    raw = db.session.execute(text("SELECT tunnel_private_key FROM router WHERE id = :id"), {"id": first.id}).scalar()
    assert first.tunnel_private_key not in raw  # encrypted at rest, like the API password
    for url in (f"/owner/routers/{first.id}", f"/owner/routers/{first.id}/edit", "/owner/routers/"):
        assert first.tunnel_private_key not in page_text(browser.get(url))
    edit = page_text(browser.get(f"/owner/routers/{first.id}/edit"))
    assert "Adresse dans le tunnel, donnée par Kiosque : 198.51.100.2" in edit


def test_the_connection_choice_reads_right_in_english(browser):
    browser.get("/lang/en?next=/owner/routers/new")
    form = page_text(browser.get("/owner/routers/new"))
    assert "Router connection" in form and "Kiosque tunnel (WireGuard, RouterOS 7)" in form
    assert "Sign in" not in form  # the sign-in page's "Connexion", not this field's


def test_a_direct_router_still_needs_its_address(browser):
    response = browser.post("/owner/routers/new", router_values(NO_SERVER, host="", port="8728"))
    assert response.status_code == 422 and "Adresse obligatoire pour une connexion directe" in page_text(response)


def test_an_address_stays_with_its_router_until_the_router_is_deleted(browser, router_server):
    router = add_tunnelled_router(browser, name="Chez Awa")
    address, key = router.tunnel_address, router.tunnel_public_key
    back = browser.post(f"/owner/routers/{router.id}/edit",
                        router_values(router_server, name="Chez Awa", connection="direct"))
    assert back.status_code == 302
    db.session.expire_all()
    assert router.connection == RouterConnection.DIRECT and router.tunnel_address == address
    assert add_tunnelled_router(browser, name="Voisin").tunnel_address != address  # held, even while direct
    again = browser.post(f"/owner/routers/{router.id}/edit", tunnel_values(name="Chez Awa"))
    assert again.status_code == 302
    db.session.expire_all()
    assert (router.tunnel_address, router.tunnel_public_key) == (address, key)  # the script it ran still holds
    assert browser.post(f"/owner/routers/{router.id}/delete").status_code == 303  # to the list, after the confirmation page
    assert add_tunnelled_router(browser, name="Nouveau").tunnel_address == address  # freed with its router


def test_two_saves_racing_for_one_address_both_get_one(browser, monkeypatch):
    first = add_tunnelled_router(browser, name="Chez Awa")
    real, calls = tunnel.taken_addresses, []

    def read_before_the_first_committed() -> list[str]:
        calls.append(1)
        return [] if len(calls) == 1 else real()

    monkeypatch.setattr(tunnel, "taken_addresses", read_before_the_first_committed)
    second = add_tunnelled_router(browser, name="Chez Koffi")
    assert (first.tunnel_address, second.tunnel_address) == ("198.51.100.2", "198.51.100.3") and len(calls) == 2


def test_a_full_tunnel_network_is_a_form_error(app, browser):
    app.extensions["kiosque.tunnel_hub"] = create_app(settings_config(
        VPN_ENDPOINT=ENDPOINT, VPN_NETWORK="198.51.100.0/30")).extensions["kiosque.tunnel_hub"]
    add_tunnelled_router(browser, name="Seul")  # a /30 holds the hub and one router
    response = browser.post("/owner/routers/new", tunnel_values(name="De trop"))
    assert response.status_code == 422 and "n'a plus d'adresse libre" in page_text(response)
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 1


def test_routeros_6_is_offered_the_direct_connection_only(browser, router_server):
    response = browser.post("/owner/routers/new", router_values(router_server))
    router = db.session.scalar(db.select(Router))
    assert response.status_code == 302 and browser.post(f"/owner/routers/{router.id}/test").status_code == 200
    db.session.refresh(router)  # as the connection test left it
    assert router.ros_version.startswith("6.49")  # what the sandbox router says
    form = page_text(browser.get(f"/owner/routers/{router.id}/edit"))
    assert re.search(r'<input disabled id="connection-1" name="connection" type="radio" value="tunnel">', form)
    assert "n'a pas WireGuard" in form
    refused = browser.post(f"/owner/routers/{router.id}/edit", tunnel_values(name="Maquis Wifi"))
    assert refused.status_code == 422 and "RouterOS 6.49" in page_text(refused)
    db.session.expire_all()
    assert router.connection == RouterConnection.DIRECT and router.tunnel_address is None


def test_with_the_hub_off_the_pages_say_how_to_turn_it_on(app, browser):
    app.extensions["kiosque.tunnel_hub"] = None
    form = page_text(browser.get("/owner/routers/new"))
    assert "PORTAL_VPN_ENDPOINT et PORTAL_VPN_NETWORK" in form and 'disabled id="connection-1"' in form
    refused = browser.post("/owner/routers/new", tunnel_values())
    assert refused.status_code == 422 and "n'est pas activé sur ce serveur" in page_text(refused)
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 0


# -- the router script ----------------------------------------------------------------------------------


def generated_script(browser, router: Router):
    response = browser.post(f"/owner/routers/{router.id}/kit", {})
    assert response.status_code == 200, page_text(response)
    return re.search(r'<textarea id="script"[^>]*>(.*?)</textarea>', page_text(response), re.S).group(1)


def test_a_tunnelled_routers_script_puts_it_on_the_hub(browser):
    router = add_tunnelled_router(browser)
    kit = page_text(browser.get(f"/owner/routers/{router.id}/kit"))
    assert "hub.example.net:51820" in kit and "RouterOS 6 n'a pas WireGuard" in kit
    assert "N'ouvrir le service API qu'à l'adresse" not in kit  # the tunnel restricts it already
    script = generated_script(browser, router)
    wanted, untranslated = routeros_wg.read_script(script)
    assert wanted == routeros_wg.RouterTunnel(
        interface="kiosque", private_key=router.tunnel_private_key, hub_public_key=tunnel.hub_keys().public,
        endpoint="hub.example.net:51820", allowed_address=f"{HUB_ADDRESS}/32", keepalive_seconds=25,
        address=f"{router.tunnel_address}/24")
    assert "dst-port=8728" in script and "port=" not in script.replace("dst-port=", "").replace("endpoint-port=", "")
    assert '/user set [find name="kiosque"] group="kiosque" password=' in script
    assert f'address="{HUB_ADDRESS}/32" disabled=no' in script  # the kiosque user logs in from the hub only
    assert all(line.startswith(("/ip service", "/ip firewall filter", "{:local kq", "/ip hotspot", "/user",
                                ":if ([:len [/user", ":put")) for line in untranslated)
    assert router.tunnel_private_key not in page_text(browser.get(f"/owner/routers/{router.id}/kit"))


def test_a_direct_routers_script_never_sets_the_api_port(browser, router_server):
    response = browser.post("/owner/routers/new", router_values(router_server, port=str(router_server.port)))
    assert response.status_code == 302
    script = generated_script(browser, db.session.scalar(db.select(Router)))
    assert "/ip service set api disabled=no\n" in script and "port=" not in script
    assert "wireguard" not in script


def test_the_kit_explains_the_tunnel_to_a_direct_router_and_refuses_it_once_off(app, browser):
    router = add_tunnelled_router(browser)
    app.extensions["kiosque.tunnel_hub"] = None
    response = browser.post(f"/owner/routers/{router.id}/kit", {})
    assert response.status_code == 422 and "n'est pas activé sur ce serveur" in page_text(response)
    assert 'id="script"' not in page_text(response)


def test_the_hub_key_pair_is_made_once_and_rotated_with_the_other_secrets(app, browser):
    router = add_tunnelled_router(browser)
    first = tunnel.hub_keys()
    SECRETS.add(first.private)
    assert tunnel.hub_keys() == first and db.session.scalar(db.select(db.func.count(TunnelHub.id))) == 1
    raw = db.session.execute(text("SELECT private_key FROM tunnel_hub")).scalar()
    assert first.private not in raw
    assert keys.rotate() >= 3  # the router's API password and tunnel key, the hub's key
    db.session.expire_all()
    assert tunnel.hub_keys() == first and router.tunnel_private_key is not None


# -- the hub's wanted state and its reports ---------------------------------------------------------------


def test_the_hub_gets_one_peer_per_tunnelled_router(app, browser, router_server):
    a = add_tunnelled_router(browser, name="A")
    b = add_tunnelled_router(browser, name="B")
    back = browser.post(f"/owner/routers/{b.id}/edit", router_values(router_server, name="B", connection="direct"))
    assert back.status_code == 302  # B went back to a direct connection: off the hub, its address kept
    make_router(make_owner(), connection=RouterConnection.TUNNEL)  # saved before its identity: left out
    config, outside = tunnel.hub_config(tunnel.hub())
    assert [(p.public_key, [str(n) for n in p.allowed_ips]) for p in config.peers] == \
        [(a.tunnel_public_key, [f"{a.tunnel_address}/32"])]
    assert config.interface == "kiosque0" and str(config.address) == f"{HUB_ADDRESS}/24" and config.listen_port == 51820
    assert config.key_pair() == tunnel.hub_keys() and outside == []

    app.extensions["kiosque.tunnel_hub"] = create_app(settings_config(
        VPN_ENDPOINT=ENDPOINT, VPN_NETWORK="10.77.0.0/24")).extensions["kiosque.tunnel_hub"]
    config, outside = tunnel.hub_config(tunnel.hub())
    assert config.peers == () and outside == [a.id]  # the operator moved the network: A must run a new script
    assert "a changé de réseau" in page_text(browser.get(f"/owner/routers/{a.id}"))
    generated_script(browser, a)
    db.session.expire_all()
    assert a.tunnel_address == "10.77.0.2"


def peer_state(router: Router, *, handshake_ago: float | None) -> PeerState:
    now = utcnow()
    return PeerState(public_key=router.tunnel_public_key, endpoint="203.0.113.9:13231",
                     allowed_ips=(IPv4Network(f"{router.tunnel_address}/32"),),
                     latest_handshake=None if handshake_ago is None else now - timedelta(seconds=handshake_ago),
                     rx_bytes=1234, tx_bytes=5678, persistent_keepalive=None)


def test_the_hubs_report_is_written_on_the_routers_and_shown(browser):
    router = add_tunnelled_router(browser, name="Chez Awa")
    stranger = KeyPair.generate().public
    other = peer_state(router, handshake_ago=None)
    # A minute ago reads "il y a 1 minute" from 52 s to 89 s: the page may come seconds later.
    assert tunnel.record({router.tunnel_public_key: peer_state(router, handshake_ago=60),
                          stranger: other}) == 1
    db.session.expire_all()
    assert (router.tunnel_endpoint, router.tunnel_rx_bytes, router.tunnel_tx_bytes) == ("203.0.113.9:13231", 1234, 5678)
    assert tunnel.health(router) == TunnelHealth.UP
    for url in (f"/owner/routers/{router.id}", "/owner/routers/"):
        page = page_text(browser.get(url))
        assert "dernière poignée de main WireGuard il y a 1 minute" in page, url
        assert "depuis 203.0.113.9:13231" in page and "Tunnel coupé" not in page


@pytest.mark.parametrize("handshake_ago, seen_ago, state, says", [
    (None, 1, TunnelHealth.WAITING, "Tunnel pas encore établi"),
    (STALE_AFTER + 30, 1, TunnelHealth.DOWN, "Tunnel coupé"),
    (STALE_AFTER - 30, 1, TunnelHealth.UP, None),
    # The hub stopped reporting: the router is not blamed, however old its last handshake.
    (STALE_AFTER + 600, tunnel.HUB_SILENT_AFTER + 30, TunnelHealth.HUB_SILENT, "Votre routeur n'est pas en cause"),
])
def test_health_follows_the_hubs_last_report(browser, handshake_ago, seen_ago, state, says):
    router = add_tunnelled_router(browser)
    heard(router, handshake_ago=handshake_ago, seen_ago=seen_ago)
    assert tunnel.health(router) == state
    warnings = " ".join(router_service.router_warnings(router))
    for url in (f"/owner/routers/{router.id}", "/owner/routers/"):
        page = page_text(browser.get(url))
        for message in ("Tunnel pas encore établi", "Tunnel coupé", "Votre routeur n'est pas en cause"):
            assert (message in page) == (message == says), (url, message)
    assert (says or "") in warnings


def test_never_reported_counts_as_the_hub_not_reporting(browser):
    router = add_tunnelled_router(browser)
    assert tunnel.health(router) == TunnelHealth.HUB_SILENT
    direct = make_router()
    assert tunnel.health(direct) is None


# -- the worker and the owner's alerts ---------------------------------------------------------------------


@pytest.fixture
def alerting(app):
    app.config["ROUTER_DOWN_ALERT_AFTER"] = 0


def test_a_tunnel_down_router_is_down_without_a_try_and_its_owner_told_once(app, browser, alerting, monkeypatch):
    router = add_tunnelled_router(browser, name="Chez Awa")
    make_account(router.owner, offered_on=router)  # it sells online: the worker checks it
    heard(router, handshake_ago=STALE_AFTER + 60)

    def no_connection(*args, **kwargs):
        raise AssertionError("the worker tried to reach a router whose tunnel is down")

    monkeypatch.setattr(worker, "RouterClient", no_connection)
    with mail.record_messages() as outbox:
        worker.sweep()
        db.session.execute(db.update(Router).values(retry_at=utcnow()))  # its backoff is over: checked again
        db.session.commit()
        heard(router, handshake_ago=STALE_AFTER + 70)
        worker.sweep()
    assert [m.subject for m in outbox] == ["Tunnel du routeur Chez Awa coupé"]
    assert "tunnel WireGuard" in outbox[0].body and "Internet" in outbox[0].body
    db.session.expire_all()
    assert router.down_since is not None and router.failures == 2


def test_the_owner_is_not_blamed_when_the_hub_stopped_reporting(app, browser):
    router = add_tunnelled_router(browser, name="Chez Awa")
    heard(router, handshake_ago=STALE_AFTER + 600, seen_ago=tunnel.HUB_SILENT_AFTER + 30)
    with mail.record_messages() as outbox:
        router_health.tell_owner(router, router_health.Change.DOWN, "192.0.2.2:8728: timed out")
    [message] = outbox
    assert message.subject == "Routeur Chez Awa injoignable"
    assert "serveur de Kiosque, pas de votre routeur" in message.body and "Tunnel" not in message.subject


def test_the_alerts_are_in_the_owners_language(app, browser):
    router = add_tunnelled_router(browser, name="Chez Awa")
    router.owner.locale = "en"
    heard(router, handshake_ago=None)
    with mail.record_messages() as outbox:
        router_health.tell_owner(router, router_health.Change.DOWN)
    assert [m.subject for m in outbox] == ["Tunnel of router Chez Awa down"]


# -- the hub's commands, without a hub ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["sync", "status", "watch"])
def test_the_hub_commands_say_how_to_turn_the_hub_on(app, command):
    app.extensions["kiosque.tunnel_hub"] = None
    result = app.test_cli_runner().invoke(args=["vpn", command])
    assert result.exit_code == 1
    assert "The WireGuard hub is off" in result.output and "PORTAL_VPN_ENDPOINT" in result.output
    assert "PORTAL_VPN_NETWORK" in result.output
