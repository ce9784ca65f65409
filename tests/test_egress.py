"""The egress policy for router connections: what an owner's router settings may make the server reach.

The app here runs with the default policy (public addresses, ports 8728 and 8729): the sandbox
routers' allowance that every other module gets is dropped. Stored routers stand for rows saved
before the policy existed, or by any path that skipped the form: the connection refuses them too.
"""

import datetime as dt
import logging
import socket
import ssl
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal import create_app
from portal.config import ConfigurationError
from portal.extensions import db
from portal.models import Plan, Router
from portal.routeros.client import RouterAddress, RouterClient, RouterRefused, RouterTLSError
from portal.routeros.egress import EgressPolicy, EgressRefused
from portal.services import accounts, provisioning, worker
from portal.services import routers as router_service
from sandbox import ROUTER_EGRESS, demo
from sandbox.routeros import SandboxRouter
from tests.conftest import ROUTER_PASSWORD, Listener, page_text, router_values

REFUSED_MESSAGE = "Adresse refusée"
LOOPBACK = EgressPolicy.from_settings("127.0.0.0/8", "1-65535")


@pytest.fixture
def app_config(app_config):
    return {key: value for key, value in app_config.items() if key not in ROUTER_EGRESS}


@pytest.fixture
def fake_dns(monkeypatch):
    """Names the test makes up, resolving to the addresses it gives; every lookup of them is counted."""
    names: dict[str, list[list[str]]] = {}
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in names:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        answers = names[host]
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (a, int(port)) if ":" not in a else (a, int(port), 0, 0)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    class FakeDns:
        def add(self, name: str, *answers: list[str]) -> None:
            """``name`` resolves to the first answer, then the next one at each lookup (the last one stays)."""
            names[name] = list(answers)

        def lookups_of(self, name: str) -> int:
            return lookups.count(name)

    return FakeDns()


def use_policy(app, networks: str = "", ports: str = "8728,8729") -> None:
    app.extensions["kiosque.router_egress"] = EgressPolicy.from_settings(networks, ports)


def stored_router(owner, host: str, port: int, *, password: str = ROUTER_PASSWORD, username: str = "admin") -> Router:
    """A router row as it may exist without going through the form today."""
    count = db.session.scalar(db.select(db.func.count(Router.id)))
    router = Router(owner=owner, name=f"Routeur {count + 1}", host=host, port=port, api_username=username,
                    api_password=password)
    db.session.add(router)
    db.session.commit()
    return router


# -- the policy ------------------------------------------------------------------------------------

NOT_PUBLIC = [
    "127.0.0.1", "127.8.9.10", "::1",  # loopback
    "10.0.0.5", "172.16.3.4", "192.168.88.1", "fd00:ec2::254",  # private, IPv6 unique local
    "169.254.169.254", "169.254.1.1", "fe80::1",  # link-local, the cloud metadata address
    "100.64.0.1", "100.100.100.200",  # shared address space (CGNAT)
    "0.0.0.0", "::", "0.1.2.3",  # unspecified, "this network"
    "224.0.0.1", "239.1.2.3", "ff02::1", "ff0e::1", "255.255.255.255",  # multicast, broadcast
    "192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1", "198.18.0.1", "240.0.0.1",  # reserved
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::a00:1", "64:ff9b::7f00:1",  # NAT64 of private addresses
    "2002:a00:1::1", "2002:7f00:1::1",  # 6to4 carrying private addresses
    "::127.0.0.1",  # IPv4-compatible (deprecated, reserved)
]
PUBLIC = ["1.1.1.1", "41.203.64.10", "2606:4700:4700::1111", "::ffff:41.203.64.10", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_default_policy_refuses_every_address_that_is_not_public(address):
    assert not EgressPolicy().allows_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_default_policy_allows_public_addresses(address):
    assert EgressPolicy().allows_address(address)


def test_the_policy_allows_what_the_operator_lists():
    policy = EgressPolicy.from_settings("10.8.0.0/24, fd00:8::/64,192.168.88.1", "8728,8729,18728-18730")
    for allowed in ("10.8.0.1", "10.8.0.254", "fd00:8::5", "192.168.88.1", "::ffff:10.8.0.7", "1.1.1.1"):
        assert policy.allows_address(allowed), allowed
    for refused in ("10.8.1.1", "192.168.88.2", "127.0.0.1", "169.254.169.254", "fd00:9::5"):
        assert not policy.allows_address(refused), refused
    assert [port for port in (25, 6379, 8727, 8728, 8729, 8730, 18728, 18730, 18731) if policy.allows_port(port)] == [
        8728, 8729, 18728, 18730]
    assert policy.describe_ports() == "8728, 8729, 18728-18730"
    assert EgressPolicy().describe_ports() == "8728, 8729"


def test_unspecified_multicast_and_broadcast_stay_refused_whatever_is_listed():
    everything = EgressPolicy.from_settings("0.0.0.0/0, ::/0", "1-65535")
    assert everything.allows_address("127.0.0.1") and everything.allows_address("10.1.2.3")
    for refused in ("0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"):
        assert not everything.allows_address(refused), refused


@pytest.mark.parametrize(("networks", "ports"), [
    ("10.8.0.1/24", "8728"), ("10.8.0.0/33", "8728"), ("vpn", "8728"), ("", "0"), ("", "70000"),
    ("", "8729-8728"), ("", "api"), ("", "8728;8729"),
])
def test_wrong_settings_stop_the_app_at_start(networks, ports):
    with pytest.raises(ConfigurationError, match="PORTAL_ROUTER_ALLOWED"):
        create_app({"ENV": "testing", "SECRET_KEY": "x", "ENCRYPTION_KEY": Fernet.generate_key().decode(),
                    "ROUTER_ALLOWED_NETWORKS": networks, "ROUTER_ALLOWED_PORTS": ports})


def test_settings_are_read_from_the_environment(monkeypatch, app_config):
    monkeypatch.setenv("PORTAL_ROUTER_ALLOWED_NETWORKS", "10.8.0.0/24,fd00:8::/64")
    monkeypatch.setenv("PORTAL_ROUTER_ALLOWED_PORTS", "8729")  # read as the number 8729
    policy = create_app(app_config).extensions["kiosque.router_egress"]
    assert policy == EgressPolicy.from_settings(["10.8.0.0/24", "fd00:8::/64"], [8729])


def test_every_address_a_name_resolves_to_is_checked(fake_dns):
    fake_dns.add("public.example", ["41.203.64.10"])
    fake_dns.add("mixed.example", ["41.203.64.10", "10.0.0.7"])
    fake_dns.add("mixed6.example", ["2606:4700:4700::1111", "fd00::7"])
    policy = EgressPolicy()
    assert policy.resolve("public.example", 8728, 1.0) == [(socket.AF_INET, ("41.203.64.10", 8728))]
    for name in ("mixed.example", "mixed6.example", "localhost"):
        with pytest.raises(EgressRefused):
            policy.resolve(name, 8728, 1.0)
    with pytest.raises(EgressRefused):
        policy.resolve("public.example", 25, 1.0)  # the port is refused before any lookup
    assert fake_dns.lookups_of("public.example") == 1


def test_the_connection_goes_to_the_address_checked(fake_dns):
    """A name that answers a refused address at its second lookup (DNS rebinding) changes nothing."""
    with SandboxRouter(password=ROUTER_PASSWORD) as sandbox:
        fake_dns.add("rebinding.example", ["127.0.0.1"], ["10.1.2.3"])
        address = RouterAddress("rebinding.example", sandbox.port, "admin", ROUTER_PASSWORD, timeout=2.0,
                                policy=LOOPBACK)
        client = RouterClient(address)
        assert client.facts().identity == "Kiosque-Sandbox"
        client.close()
        assert fake_dns.lookups_of("rebinding.example") == 1
        with pytest.raises(RouterRefused, match=r"refused by the server's policy$"):
            RouterClient(address).facts()  # a new connection looks up again, and checks again


def _certificate_for(name: str, folder) -> tuple[ssl.SSLContext, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context, str(folder / "cert.pem")


def test_api_ssl_is_verified_against_the_name_while_connecting_to_the_checked_address(fake_dns, tmp_path,
                                                                                      monkeypatch):
    server_context, ca_file = _certificate_for("router.example", tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # the default trust store: this certificate alone
    fake_dns.add("router.example", ["127.0.0.1"])
    fake_dns.add("other.example", ["127.0.0.1"])
    with SandboxRouter(password=ROUTER_PASSWORD, ssl_context=server_context) as sandbox:
        def client(host: str) -> RouterClient:
            return RouterClient(RouterAddress(host, sandbox.port, "admin", ROUTER_PASSWORD, use_tls=True,
                                              tls_verify=True, timeout=2.0, policy=LOOPBACK))

        verified = client("router.example")
        assert verified.facts().identity == "Kiosque-Sandbox"
        verified.close()
        for wrong_name in ("other.example", "127.0.0.1"):  # same address, a name the certificate lacks
            with pytest.raises(RouterTLSError, match="CERTIFICATE_VERIFY_FAILED"):
                client(wrong_name).facts()


# -- saving a router -------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.0.0.5", "192.168.88.1", "169.254.169.254",
                                  "100.64.0.1", "0.0.0.0", "::1", "[::1]", "::ffff:127.0.0.1", "fd00::1"])
def test_a_router_on_a_refused_address_is_not_saved(browser, host):
    response = browser.post("/owner/routers/new", router_values_for(host, 8728))
    assert response.status_code == 422
    assert REFUSED_MESSAGE in page_text(response)
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 0


def router_values_for(host: str, port: int, **overrides) -> dict:
    return router_values(SimpleNamespace(host=host, port=port), **overrides)


def test_the_servers_own_mail_port_is_refused_at_save(browser):
    response = browser.post("/owner/routers/new", router_values_for("127.0.0.1", 25))
    assert response.status_code == 422
    assert "Port refusé : Kiosque ne se connecte aux routeurs que sur les ports 8728, 8729." in page_text(response)
    public = browser.post("/owner/routers/new", router_values_for("41.203.64.10", 25))
    assert public.status_code == 422 and "ports 8728, 8729" in page_text(public)
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 0


def test_a_name_resolving_to_a_private_address_among_public_ones_is_not_saved(browser, fake_dns):
    fake_dns.add("mixed.example", ["41.203.64.10", "192.168.1.10"])
    fake_dns.add("router.example", ["41.203.64.10"])
    response = browser.post("/owner/routers/new", router_values_for("mixed.example", 8728))
    assert response.status_code == 422 and REFUSED_MESSAGE in page_text(response)
    assert browser.post("/owner/routers/new", router_values_for("router.example", 8728)).status_code == 302


def test_the_service_refuses_as_the_form_does(app, owner):
    values = {**{k: v for k, v in router_values_for("127.0.0.1", 8728).items() if k != "api_password"},
              "port": 8728, "name_length": 6, "use_tls": False, "tls_verify": True, "connection": "direct"}
    with pytest.raises(router_service.RouterSettingsError) as refused:
        router_service.save_router(owner, None, values, ROUTER_PASSWORD)
    assert refused.value.field == "host"
    with pytest.raises(router_service.RouterSettingsError) as bad_password:
        router_service.save_router(owner, None, {**values, "host": "41.203.64.10"}, "pw\r\nQUIT")
    assert bad_password.value.field == "api_password"
    with pytest.raises(router_service.RouterSettingsError) as bad_port:
        router_service.save_router(owner, None, {**values, "host": "41.203.64.10", "port": 6379}, ROUTER_PASSWORD)
    assert bad_port.value.field == "port"


# (A NUL never gets this far: the app answers 400 to any request holding one, portal/security.py.)
@pytest.mark.parametrize(("field", "value"), [
    ("api_password", "x\r\nMAIL FROM:<owner@example.com>"), ("api_password", "x\nQUIT"),
    ("api_password", "x\ty"), ("api_password", "x\x7f"), ("api_password", "x\x85y"),
    ("api_username", "admin\r\nRCPT TO:<a@b.c>"), ("api_username", "admin\x7f"),
])
def test_control_characters_in_api_credentials_are_refused_and_never_sent(browser, app, field, value):
    use_policy(app, "127.0.0.0/8", "1-65535")  # the listener would be allowed: only the value is at fault
    with Listener() as listener:
        response = browser.post("/owner/routers/new", router_values(listener, **{field: value}))
        assert response.status_code == 422
        assert "Caractère de contrôle refusé" in page_text(response)
        assert db.session.scalar(db.select(db.func.count(Router.id))) == 0
    assert listener.connections == 0


# -- connecting to a stored router -----------------------------------------------------------------

def offer_an_account(router: Router) -> None:
    credentials = demo.CREDENTIALS["fedapay"]
    account = accounts.save_account(router.owner, None, "fedapay", {
        "label": "FedaPay", "active": True, "environment": "sandbox", "networks": demo.NETWORKS, **credentials,
    }, credentials)
    accounts.set_router_accounts(router, [account.id])
    db.session.commit()


def every_connection_attempt(browser, router: Router) -> list[str]:
    """The connection test, a cash sale, the worker's health check: what each says."""
    offer_an_account(router)
    plan = Plan(router=router, label="1 heure", profile="1h", price=200, time_limit="1h")
    db.session.add(plan)
    db.session.commit()
    said = [page_text(browser.post(f"/owner/routers/{router.id}/test", headers={"HX-Request": "true"}))]
    with pytest.raises(RouterRefused):
        provisioning.sell_by_hand(router, plan)
    said.append(page_text(browser.post(f"/owner/routers/{router.id}/sell", {"plan_id": plan.id},
                                       headers={"HX-Request": "true"})))
    worker.check_router(router)
    db.session.refresh(router)
    assert router.down_since is not None
    return said


def test_a_stored_router_on_the_servers_own_port_is_never_connected(browser, app, owner):
    use_policy(app, ports="1-65535")  # the default networks: the loopback is refused
    with Listener(answer=b"220 mail.local ESMTP\r\n") as mail_server:
        router = stored_router(owner, "127.0.0.1", mail_server.port, password="x\r\nMAIL FROM:<a@b.c>")
        for page in every_connection_attempt(browser, router):
            assert "n'a pas pu ouvrir de session API" in page
    assert mail_server.connections == 0


def test_a_stored_router_on_a_name_resolving_to_the_loopback_is_never_connected(browser, app, owner):
    use_policy(app, ports="1-65535")
    with Listener() as listener:
        router = stored_router(owner, "localhost", listener.port)
        every_connection_attempt(browser, router)
    assert listener.connections == 0


def test_a_stored_router_on_a_refused_port_is_never_connected(browser, app, owner):
    use_policy(app, networks="127.0.0.0/8")  # the loopback allowed, the default ports
    with Listener() as listener:
        router = stored_router(owner, "127.0.0.1", listener.port)
        every_connection_attempt(browser, router)
    assert listener.connections == 0


def test_stored_credentials_with_control_characters_are_never_sent(browser, app, owner):
    use_policy(app, "127.0.0.0/8", "1-65535")  # the destination is allowed: the credentials are not
    with Listener() as listener:
        crlf_password = stored_router(owner, "127.0.0.1", listener.port, password="x\r\nQUIT")
        every_connection_attempt(browser, crlf_password)
        escape_user = stored_router(owner, "127.0.0.1", listener.port, username="admin\x1b[2J")
        assert "n'a pas pu ouvrir de session API" in page_text(
            browser.post(f"/owner/routers/{escape_user.id}/test", headers={"HX-Request": "true"}))
    assert listener.connections == 0 and listener.received == b""


def test_the_refusal_says_nothing_of_what_the_name_resolved_to(app, owner, fake_dns, caplog, monkeypatch):
    caplog.set_level(logging.WARNING)
    # logging.config.fileConfig (Alembic's env.py) disables loggers created before it ran.
    monkeypatch.setattr(logging.getLogger("portal.routeros.client"), "disabled", False)
    fake_dns.add("inside.example", ["10.20.30.40"])
    router = stored_router(owner, "inside.example", 8728)
    with pytest.raises(RouterRefused) as refused:
        RouterClient(router_service.router_address(router)).facts()
    assert str(refused.value) == "inside.example:8728: refused by the server's policy"
    assert "10.20.30.40" not in repr(refused.value)
    assert refused.value.__cause__ is None and refused.value.__context__ is None
    # The operator sees the attempt, and why.
    assert "inside.example:8728: connection refused by the egress policy (address)" in caplog.text
