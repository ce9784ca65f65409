"""RouterClient against the sandbox router over real TCP: every call, every fault, no leaked secret."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
import traceback

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.routeros.client import (
    MAX_CONNECTIONS,
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
    close_all,
    router_client,
)
from portal.routeros.egress import EgressPolicy
from sandbox.routeros import SandboxRouter

ROUTER_PASSWORD = "Rtr-S3cret-2468"
TICKET_PASSWORD = "Tk7-9931-pw"
SECRETS = (ROUTER_PASSWORD, TICKET_PASSWORD)
# The sandbox routers listen on the loopback, on a random port.
LOOPBACK = EgressPolicy.from_settings("127.0.0.0/8", "1-65535")


@pytest.fixture(autouse=True)
def _shared_clients():
    yield
    close_all()


@pytest.fixture
def router():
    with SandboxRouter(password=ROUTER_PASSWORD) as sandbox:
        sandbox.add_host("10.5.50.10", "aa:bb:cc:dd:ee:10")
        yield sandbox


def address_of(sandbox: SandboxRouter, **changes) -> RouterAddress:
    return RouterAddress(**{"host": sandbox.host, "port": sandbox.port, "username": "admin",
                            "password": ROUTER_PASSWORD, "timeout": 2.0, "policy": LOOPBACK, **changes})


@pytest.fixture
def client(router):
    with_client = RouterClient(address_of(router))
    yield with_client
    with_client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def assert_no_secret(error: BaseException) -> None:
    texts = (str(error), repr(error), "".join(traceback.format_exception(error)))
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
    assert error.__cause__ is None and error.__context__ is None  # no library exception rides along


# --- calls ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("version", "date"),
    [("6.49.10 (long-term)", r"[a-z]{3}/\d\d/\d{4}"), ("7.16 (stable)", r"\d{4}-\d\d-\d\d")],
)
def test_facts(router, client, version, date):
    router.version = version
    facts = client.facts()
    assert (facts.identity, facts.version, facts.board_name, facts.time_zone) == (
        "Kiosque-Sandbox", version, "hAP ac^2", "Africa/Porto-Novo")
    assert re.fullmatch(date, facts.date) and re.fullmatch(r"\d\d:\d\d:\d\d", facts.time)
    assert re.fullmatch(r"(\d+[wdhms])+", facts.uptime)


def test_hotspot_lists(client):
    assert [(s["name"], s["profile"]) for s in client.hotspot_servers()] == [("hotspot1", "hsprof1")]
    assert [(p["name"], p["dns-name"], p["login-by"]) for p in client.server_profiles()] == [
        ("hsprof1", "wifi.net", "cookie,http-chap")]
    profiles = {p["name"]: p for p in client.user_profiles()}
    assert profiles["1d"]["on-login"].startswith(':put (",rem,500,1d,0,,Disable,")')
    assert profiles["1d"]["id"].startswith("*")


def test_add_find_remove(router, client):
    user_id = client.add_user(name="kmtz4827", password=TICKET_PASSWORD, profile="1d", limit_uptime="3h",
                              comment="vc-417-06.15.24-momo8F3K")
    assert re.fullmatch(r"\*[0-9A-F]+", user_id)
    client.add_user(name="other", password="x", profile="1h")
    (row,) = client.find_users(name="kmtz4827")
    assert (row["id"], row["password"], row["limit-uptime"], row["limit-bytes-total"], row["server"]) == (
        user_id, TICKET_PASSWORD, "3h", "0", "all")
    assert [r["name"] for r in client.find_users(comment="vc-417-06.15.24-momo8F3K")] == ["kmtz4827"]
    assert len(client.find_users()) == 2
    client.remove_user(user_id)
    assert client.find_users(name="kmtz4827") == []
    add, plain_add = (s for s in router.received if s[0] == "/ip/hotspot/user/add")
    assert {"=limit-uptime=3h", "=limit-bytes-total=0", "=server=all", "=profile=1d"} <= set(add)
    assert not any(word.startswith("=comment") for word in plain_add)  # no bare "=comment" word
    logins = [s for s in router.received if s[0] == "/login"]
    assert len(logins) == 1 and f"=password={ROUTER_PASSWORD}" in logins[0]  # plaintext login, once


def test_empty_replies_mode(router, client):
    router.empty_replies = True
    assert client.find_users(name="nobody") == []
    assert client.active_sessions() == []


def test_active_login(router, client):
    client.add_user(name="u1", password=TICKET_PASSWORD, profile="1d")
    client.active_login(user="u1", password=TICKET_PASSWORD, ip="10.5.50.10", mac="aa:bb:cc:dd:ee:10")
    (session,) = client.active_sessions()
    assert (session["user"], session["address"], session["mac-address"], session["login-by"]) == (
        "u1", "10.5.50.10", "AA:BB:CC:DD:EE:10", "api")
    assert router.active()[0][".id"] == session["id"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.add_user(name="dup", password=TICKET_PASSWORD, profile="1d"),
         "failure: already have user with this name for this server"),
        (lambda c: c.add_user(name="n1", password=TICKET_PASSWORD, profile="10d"),
         "input does not match any value of profile"),
        (lambda c: c.add_user(name="n2", password=TICKET_PASSWORD, profile="1d", server="hs9"),
         "input does not match any value of server"),
        (lambda c: c.remove_user("*99"), "no such item"),
        (lambda c: c.active_login(user="dup", password="wrong-" + TICKET_PASSWORD, ip="10.5.50.10"),
         "invalid username or password"),
        (lambda c: c.active_login(user="dup", password=TICKET_PASSWORD, ip="10.9.9.9"), "no such host"),
    ],
)
def test_traps_become_command_errors(router, client, call, message):
    client.add_user(name="dup", password=TICKET_PASSWORD, profile="1d")
    with pytest.raises(RouterCommandError) as caught:
        call(client)
    assert caught.value.router_message == message
    assert str(caught.value) == f"{router.host}:{router.port}: router refused the command: {message}"
    assert (caught.value.host, caught.value.port) == (router.host, router.port)
    assert_no_secret(caught.value)
    assert client.facts().identity == "Kiosque-Sandbox"  # a trap leaves the session usable
    assert router.connections == 1


# --- faults --------------------------------------------------------------------------------------

def test_auth_failure_closes_the_socket(router):
    bad = RouterClient(address_of(router, password="not-" + ROUTER_PASSWORD))
    with pytest.raises(RouterAuthFailed, match=r"login refused: invalid user name or password \(6\)$") as caught:
        bad.facts()
    assert_no_secret(caught.value)
    assert wait_until(lambda: router.open_connections == 0)  # the failed login left no socket open


def test_refused_and_closed_port_are_unreachable(router, client):
    client.facts()
    router.mode = "refuse"
    with pytest.raises(RouterUnreachable, match="Connection refused") as refused:
        client.facts()  # the open session is gone: one reconnection, refused
    assert not isinstance(refused.value, RouterConnectionLost)
    assert router.connections == 1
    with pytest.raises(RouterUnreachable, match="Connection refused"):
        RouterClient(address_of(router, port=free_port())).facts()
    with pytest.raises(RouterUnreachable):
        RouterClient(address_of(router, host="no-such-router.invalid")).facts()
    router.mode = "normal"
    assert RouterClient(address_of(router)).facts().identity == "Kiosque-Sandbox"


def test_hang_times_out_once(router):
    router.mode = "hang"
    fresh = RouterClient(address_of(router, timeout=0.5))
    started = time.monotonic()
    with pytest.raises(RouterTimeout, match=r"no answer within 0.5 s"):
        fresh.facts()
    assert 0.45 <= time.monotonic() - started < 0.9
    router.mode = "normal"
    reused = RouterClient(address_of(router, timeout=0.5))
    reused.facts()
    connections = router.connections
    router.mode = "hang"
    started = time.monotonic()
    with pytest.raises(RouterTimeout):
        reused.facts()
    assert time.monotonic() - started < 0.9 and router.connections == connections  # a timeout is not retried
    router.mode = "normal"
    assert reused.facts().identity == "Kiosque-Sandbox"  # the next call reconnects


def test_drop_on_reused_connection_reconnects_once(router, client):
    client.facts()
    router.mode = "drop"
    assert client.facts().identity == "Kiosque-Sandbox"
    assert router.connections == 2


def test_drop_on_fresh_connection_raises_at_once(router, client):
    router.mode = "drop"
    with pytest.raises(RouterUnreachable, match="connection closed by the router") as caught:
        client.facts()
    assert not isinstance(caught.value, RouterConnectionLost)
    assert router.connections == 1


def test_retry_happens_once(router, client):
    client.facts()

    def drop_again() -> None:
        if wait_until(lambda: router.connections == 2):
            router.mode = "drop"

    router.mode = "drop"
    router.latency = 0.2  # time to arm the second drop before the reconnection's first reply
    rearm = threading.Thread(target=drop_again)
    rearm.start()
    with pytest.raises(RouterUnreachable, match="connection closed by the router"):
        client.facts()
    rearm.join()
    assert router.connections == 2


def test_dropped_add_is_not_doubled(router, client):
    client.facts()
    router.mode = "drop"  # the add reaches the router, its reply is lost
    user_id = client.add_user(name="once", password=TICKET_PASSWORD, profile="1d", comment="vc-1")
    assert [(u[".id"], u["name"]) for u in router.users()] == [(user_id, "once")]
    assert router.connections == 2


def test_dropped_remove_and_login_are_not_errors(router, client):
    user_id = client.add_user(name="gone", password=TICKET_PASSWORD, profile="1d")
    client.add_user(name="on", password=TICKET_PASSWORD, profile="1d")
    router.mode = "drop"
    client.remove_user(user_id)
    router.mode = "drop"
    client.active_login(user="on", password=TICKET_PASSWORD, ip="10.5.50.10")
    assert [u["name"] for u in router.users()] == ["on"]
    assert [a["user"] for a in router.active()] == ["on"]
    assert router.connections == 3


# --- TLS -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_context(tmp_path_factory):
    """A server context with a self-signed certificate for 127.0.0.1, like api-ssl's own."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kiosque-Sandbox")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_tls_without_verification_accepts_self_signed(tls_context):
    with SandboxRouter(password=ROUTER_PASSWORD, ssl_context=tls_context) as sandbox:
        tls = RouterClient(address_of(sandbox, use_tls=True, tls_verify=False))
        assert tls.facts().identity == "Kiosque-Sandbox"
        tls.close()


def test_tls_verification_rejects_self_signed(tls_context):
    with SandboxRouter(password=ROUTER_PASSWORD, ssl_context=tls_context) as sandbox:
        with pytest.raises(RouterTLSError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            RouterClient(address_of(sandbox, use_tls=True, tls_verify=True)).facts()
        assert_no_secret(caught.value)


def test_tls_to_api_ssl_without_certificate():
    """api-ssl with no certificate offers only anonymous Diffie-Hellman; unverified TLS accepts it."""
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    anonymous.maximum_version = ssl.TLSVersion.TLSv1_2
    anonymous.set_ciphers("aNULL:@SECLEVEL=0")
    with SandboxRouter(password=ROUTER_PASSWORD, ssl_context=anonymous) as sandbox:
        assert RouterClient(address_of(sandbox, use_tls=True, tls_verify=False)).facts().identity == "Kiosque-Sandbox"
        with pytest.raises(RouterTLSError):
            RouterClient(address_of(sandbox, use_tls=True, tls_verify=True)).facts()


# --- sharing -------------------------------------------------------------------------------------

def test_router_client_is_shared_and_keeps_one_connection(router):
    address = address_of(router)
    shared = router_client(address)
    assert router_client(address) is shared
    assert router_client(address_of(router, timeout=3.0)) is not shared  # another address, another client
    for index in range(10):
        router_client(address).add_user(name=f"s{index}", password=TICKET_PASSWORD, profile="1h")
    router_client(address).facts()
    assert router.connections == 1


def test_idle_clients_expire(router):
    address = address_of(router)
    first = router_client(address, idle_seconds=0.2)
    first.facts()
    assert router_client(address, idle_seconds=0.2) is first
    time.sleep(0.3)
    second = router_client(address, idle_seconds=0.2)
    assert second is not first
    assert wait_until(lambda: router.open_connections == 0)  # the idle client's socket was closed
    second.facts()
    assert router.connections == 2


def test_twenty_threads_share_a_few_connections(router, client):
    errors: list[BaseException] = []

    def add(index: int) -> None:
        try:
            client.add_user(name=f"t{index:02}", password=TICKET_PASSWORD, profile="1d", comment=f"vc-{index}")
        except RouterError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert sorted(u["name"] for u in router.users()) == [f"t{index:02}" for index in range(20)]
    assert 1 <= router.connections <= MAX_CONNECTIONS


def test_calls_at_the_same_time_do_not_wait_for_each_other(router):
    client = RouterClient(address_of(router), max_connections=2)
    router.latency = 0.5  # each reply, the login's included

    def both(call) -> float:
        threads = [threading.Thread(target=call) for _ in range(2)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        return time.monotonic() - started

    both(client.user_profiles)  # opens the two connections
    assert router.connections == 2
    assert both(client.user_profiles) < 0.9  # one reply's wait, not two in a row
    assert router.connections == 2
    client.close()


def test_sequential_calls_keep_one_connection(router):
    client = RouterClient(address_of(router), max_connections=4)
    for index in range(5):
        client.add_user(name=f"q{index}", password=TICKET_PASSWORD, profile="1h")
    assert router.connections == 1
    client.close()


def test_a_call_waits_for_a_free_connection_up_to_the_timeout(router):
    client = RouterClient(address_of(router, timeout=0.5), max_connections=1)
    held, generation = client._take()  # the only connection, as a call in progress holds it
    started = time.monotonic()
    with pytest.raises(RouterTimeout, match=r"no free API session within 0.5 s"):
        client.facts()
    assert 0.45 <= time.monotonic() - started < 2
    client._give_back(held, generation)
    assert client.facts().identity == "Kiosque-Sandbox"
    client.close()


def test_close_drops_a_connection_in_use_when_its_call_ends(router, client):
    client.facts()
    router.latency = 0.3
    sent = len(router.received)
    call = threading.Thread(target=client.facts)
    call.start()
    assert wait_until(lambda: len(router.received) > sent)  # the call is waiting on its reply
    client.close()
    call.join(timeout=5)
    assert wait_until(lambda: router.open_connections == 0)


def test_reprs_hide_the_password(router, client):
    assert ROUTER_PASSWORD not in repr(address_of(router)) and ROUTER_PASSWORD not in repr(client)


# --- secrets -------------------------------------------------------------------------------------

def test_no_secret_in_any_error_or_log(router, tls_context, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    # logging.config.fileConfig (Alembic's env.py) disables loggers created before it ran; this
    # test is about what the client logs, whatever another test configured before.
    monkeypatch.setattr(logging.getLogger("portal.routeros.client"), "disabled", False)
    errors: list[RouterError] = []

    def expect_error(call) -> None:
        with pytest.raises(RouterError) as caught:
            call()
        errors.append(caught.value)

    client = RouterClient(address_of(router, timeout=0.5))
    client.add_user(name="dup", password=TICKET_PASSWORD, profile="1d")
    expect_error(lambda: client.add_user(name="dup", password=TICKET_PASSWORD, profile="1d"))
    expect_error(lambda: client.active_login(user="dup", password="x" + TICKET_PASSWORD, ip="10.5.50.10"))
    expect_error(lambda: RouterClient(address_of(router, password=TICKET_PASSWORD)).facts())
    router.mode = "drop"
    client.add_user(name="retried", password=TICKET_PASSWORD, profile="1d")  # logs the reconnect
    router.mode = "drop"
    expect_error(lambda: RouterClient(address_of(router)).add_user(name="new", password=TICKET_PASSWORD, profile="1d"))
    router.mode = "hang"
    expect_error(lambda: client.add_user(name="slow", password=TICKET_PASSWORD, profile="1d"))
    router.mode = "refuse"
    expect_error(lambda: client.add_user(name="refused", password=TICKET_PASSWORD, profile="1d"))
    router.mode = "normal"
    with SandboxRouter(password=ROUTER_PASSWORD, ssl_context=tls_context) as tls_router:
        expect_error(lambda: RouterClient(address_of(tls_router, use_tls=True)).facts())

    assert [type(e) for e in errors] == [
        RouterCommandError, RouterCommandError, RouterAuthFailed, RouterUnreachable, RouterSlow,
        RouterUnreachable, RouterTLSError,
    ]
    for error in errors:
        assert_no_secret(error)
    assert any(TICKET_PASSWORD in word for s in router.received for word in s)  # the secret did travel
    assert any(r.name == "portal.routeros.client" for r in caplog.records)
    assert any("reconnecting once" in r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        assert secret not in caplog.text
        assert all(secret not in r.getMessage() for r in caplog.records)


def test_a_session_that_goes_quiet_is_slow_not_unreachable(router):
    """The router answered at login: a silence after it proves the router is there (no backoff)."""
    client = RouterClient(address_of(router, timeout=0.5))
    client.facts()
    router.mode = "hang"
    with pytest.raises(RouterSlow):
        client.facts()
    router.mode = "normal"
    fresh = RouterClient(address_of(router, timeout=0.5))
    router.mode = "hang"
    with pytest.raises(RouterTimeout) as silent_at_login:
        fresh.facts()
    assert not isinstance(silent_at_login.value, RouterSlow)
