"""Fixtures: the real app factory on a temporary database, a sandbox router over real TCP, the
provider sandbox with the receiver of its notifications."""

import html
import logging
import os
import re
import email
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as email_policy
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin

import pytest
import requests
from cryptography.fernet import Fernet
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from portal import create_app
from portal.extensions import db
from portal.models import Order, Router, Ticket
from portal.payments.base import OrderData
from portal.routeros.client import close_all
from portal.services import owners
from sandbox import ROUTER_EGRESS, demo, point_adapters_at
from sandbox.providers import ProviderSandbox
from sandbox.routeros import SandboxRouter

# The browser fixtures (chromium, contexts, live, shots), in a module of their own.
pytest_plugins = ("tests.browser",)

ROUTER_PASSWORD = "r0uter-Secret!"
# The suite runs on SQLite by default, on PostgreSQL when this names a database it may empty.
DATABASE_URL = os.environ.get("KIOSQUE_TEST_DATABASE_URL")


class RequestContextClient(FlaskClient):
    """Each request runs in an application context of its own, as in production.

    The tests keep one application context open so they can use `db.session` between requests;
    Flask would reuse it for every request, and with it `g` (where Flask-Login and Flask-Babel
    cache the signed-in owner and the language) and the database session. A request of its own
    gets a fresh `g` and a fresh session, which it closes at its end; the test's objects are then
    as stale as they would be for another process, and tests read what a request wrote afresh.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def app_config(tmp_path) -> dict:
    """The test configuration; a module overrides this fixture to change it."""
    return {
        "ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SQLALCHEMY_DATABASE_URI": DATABASE_URL or f"sqlite:///{tmp_path / 'kiosque.db'}",
        "ROUTER_TIMEOUT": 5.0,  # as in production: a busy machine must not make a live router look dead
        "RATELIMIT_ENABLED": False,
        "ORDER_POLL_AFTER": 0,  # the order page asks the provider at once: tests need no waiting
        "PROVIDER_CHECK_GAP": 0,
        **ROUTER_EGRESS,  # the sandbox routers (tests of the egress policy itself drop this)
    }


@pytest.fixture
def app(app_config):
    yield from with_test_database(create_app(app_config))


def with_test_database(app: Flask) -> Iterator[Flask]:
    """Run a fixture's app on an empty test database, emptied again after (for `yield from`)."""
    app.test_client_class = RequestContextClient
    with app.app_context():
        empty_database()
        db.create_all()
        yield app
        db.session.rollback()
        register_ticket_secrets()
        db.session.remove()
        db.engine.dispose()  # connections left by server threads would block the drop
        empty_database()
    close_all()


def empty_database() -> None:
    """Drop every table, the migrations' bookkeeping included (a shared PostgreSQL database)."""
    db.drop_all()
    with db.engine.begin() as connection:
        connection.execute(db.text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture
def router_server():
    with SandboxRouter(password=ROUTER_PASSWORD) as server:
        yield server


class Browser:
    """A test client that signs in and sends the CSRF token like the owner's browser does."""

    def __init__(self, client):
        self.client = client
        self._token = None

    def token(self) -> str:
        if self._token is None:
            page = self.client.get("/owner/login").get_data(as_text=True)
            self._token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        return self._token

    def get(self, url, **kw):
        return self.client.get(url, **kw)

    def post(self, url, data=None, **kw):
        return self.client.post(url, data={"csrf_token": self.token(), **(data or {})}, **kw)

    def login(self, email, password):
        return self.post("/owner/login", {"email": email, "password": password})


@pytest.fixture
def owner(app):
    return owners.create_owner("owner@example.com", "owner-password")


@pytest.fixture
def browser(app, owner):
    browser = Browser(app.test_client())
    assert browser.login("owner@example.com", "owner-password").status_code == 302
    return browser


class Listener:
    """A plain TCP service on the loopback, not RouterOS: counts connections, keeps what it receives.

    With ``answer`` it replies that once something arrives, then hangs up (an HTTP server, say);
    without, it accepts and never says a word.
    """

    def __init__(self, answer: bytes | None = None):
        self.answer = answer
        self.connections = 0
        self.received = bytearray()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._server.getsockname()[:2]
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "Listener":
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.close()
        for sock in self._open:
            sock.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(sock)
            self._spawn(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        try:
            while data := sock.recv(4096):
                self.received += data
                if self.answer is not None:
                    sock.sendall(self.answer)
                    sock.close()
                    return
        except OSError:
            return


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def router_values(server, **overrides) -> dict:
    """A valid router form for the sandbox router."""
    values = {
        "name": "Maquis Wifi", "host": server.host, "port": str(server.port), "api_username": "admin",
        "api_password": ROUTER_PASSWORD, "hotspot_server": "all", "dns_name": "", "user_mode": "vc",
        "name_length": "6", "charset": "lower", "prefix": "", "currency": "XOF", "notify_email": "",
    }
    values.update(overrides)
    return values


def add_tested_router(browser, router_server) -> Router:
    """The owner adds the sandbox router on the router form and tests the connection."""
    assert browser.post("/owner/routers/new", router_values(router_server)).status_code == 302
    router = db.session.scalar(db.select(Router))
    assert browser.post(f"/owner/routers/{router.id}/test").status_code == 200
    return router


def page_text(response) -> str:
    """The response body as a reader sees it (entities decoded)."""
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def provider_sandbox():
    sandbox = ProviderSandbox().start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def live_server(app, provider_sandbox):
    """The app served over real HTTP, as providers and buyers' browsers reach it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_URL"] = url
    point_adapters_at(app, provider_sandbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    provider_sandbox.drain(timeout=5)
    server.shutdown()
    thread.join(5)


# -- secrets never reach the logs ---------------------------------------------------------------
# Every log record of the whole run is kept, and every secret the suite uses is registered; a
# last test (tests/test_log_secrecy.py, run at the end) searches the first for the second.

LOG_LINES: list[str] = []
SECRETS: set[str] = {ROUTER_PASSWORD, "owner-password"}


# Loggers of the test's stand-ins, not of Kiosque: werkzeug's development server logs request
# lines (production runs gunicorn, whose access log is configured apart), aiosmtpd logs the mail
# it receives, as the owner's mailbox would hold it, and urllib3 the URLs the suite's buyers and
# providers ask for (Kiosque's own calls put no secret in a URL).
NOT_KIOSQUE = ("werkzeug", "mail.log", "urllib3")


class _KeepEverything(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(NOT_KIOSQUE):
            LOG_LINES.append(self.format(record))


def pytest_configure(config) -> None:
    handler = _KeepEverything(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)


def pytest_collection_modifyitems(items) -> None:
    """The log check runs after everything else."""
    items.sort(key=lambda item: item.get_closest_marker("after_everything") is not None)


def register_ticket_secrets() -> None:
    """Before a test's database goes: remember every ticket password and order code it made (a
    code opens its order's page and ticket)."""
    SECRETS.update(db.session.scalars(db.select(Ticket.password)).all())
    SECRETS.update(db.session.scalars(db.select(Order.code)).all())


# -- a shop selling through the three sandbox providers, and its buyer ------------------------------

CLIENT_IP, CLIENT_MAC = "10.5.50.77", "AA:BB:CC:00:11:22"
PHONE = "2290197000000"
CREDENTIALS = demo.CREDENTIALS  # the keys the sandbox providers accept


@pytest.fixture
def shop(app, live_server, provider_sandbox, router_server):
    """An owner selling two plans on the sandbox router through the three sandbox providers."""
    router = demo.seed_shop(router_server.host, router_server.port, ROUTER_PASSWORD, dns_name="wifi.net",
                            email="maquis@example.com", password="maquis-password", router_name="Maquis",
                            plans=(("1 heure", "1h", 200, "1h"), ("1 jour", "1d", 500, "1d")))
    demo.register_accounts(provider_sandbox, router, live_server)
    router_server.add_host(CLIENT_IP, CLIENT_MAC)
    return router


class Buyer:
    """A phone on the hotspot: a browser session that came from the router's login page."""

    def __init__(self, base: str, router: Router):
        self.base, self.router, self.http = base, router, requests.Session()

    def buy(self, provider: str, plan_label: str = "1 heure", **extra) -> requests.Response:
        page = self.http.get(f"{self.base}/r/{self.router.slug}",
                             params={"mac": CLIENT_MAC, "ip": CLIENT_IP, "dst": "http://example.com/", "server": "hotspot1"})
        assert page.status_code == 200
        intent = re.search(r'name="intent" value="([^"]+)"', page.text).group(1)
        plan = next(p for p in self.router.plans if p.label == plan_label)
        account = next(a for a in self.router.accounts if a.provider == provider)
        form = {"intent": intent, "plan_id": plan.id, "account_id": account.id, "mac": CLIENT_MAC, "ip": CLIENT_IP,
                "dst": "http://example.com/", "server": "hotspot1", "phone": PHONE, "network": "mtn", **extra}
        return self.http.post(f"{self.base}/r/{self.router.slug}/buy", data=form, allow_redirects=False)

    def order_page(self, order: Order) -> str:
        return html.unescape(self.http.get(f"{self.base}/o/{order.code}").text)


def latest_order() -> Order:
    db.session.expire_all()
    return db.session.scalar(db.select(Order).order_by(Order.id.desc()))


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def users_for(router_server, order: Order) -> list[dict]:
    return [u for u in router_server.users() if u.get("comment", "").endswith("-" + order.code)]


# -- the provider sandbox on its own, and our side of the wire ---------------------------------------
# For the sandbox's own tests and the payment adapters' tests: accounts the `sandbox` fixture
# registers, a `receiver` standing for Kiosque's webhook and return URLs, and a browser's clicks.

FEDAPAY = {"secret_key": "sk_sandbox_Kq3vT9xY2bWm", "webhook_secret": "wh_sandbox_7hJ2mN4qRr"}
FEDAPAY_PUBLIC_KEY = "pk_sandbox_L0pA8s"
CINETPAY = {"apikey": "cp-apikey-2Zr8VmQ1xx", "site_id": "445160", "secret_key": "cp-secret-9Tn3LwPk"}
FEEXPAY = {"shop_id": "64f1c2a9b8e7d6f5", "token": "fp_Xw8Rt5Yu2IoPq"}
# Their keys join the secrets the last test looks for in every log record of the run.
SECRETS.update(FEDAPAY.values(), (CINETPAY["apikey"], CINETPAY["secret_key"], FEEXPAY["token"]))



@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass


class Receiver:
    """Our side of the wire: records every request (webhooks, returns) and answers `status` and `body`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.status = 200
        self.body = "ok"
        self._changed = threading.Condition()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def _app(self, environ, start_response):
        request = Request(environ)
        recorded = Recorded(
            request.method, request.path, request.query_string.decode(), dict(request.headers), request.get_data()
        )
        with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        return Response(self.body, status=self.status)(environ, start_response)

    def start(self) -> "Receiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.port}{path}"

    def received(self, prefix: str) -> list[Recorded]:
        with self._changed:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 10.0) -> list[Recorded]:
        """The first `count` requests under `prefix`, waiting for them to arrive."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.received(prefix)) >= count, timeout)
        found = self.received(prefix)
        assert len(found) >= count, f"expected {count} requests under {prefix}, got {len(found)}"
        return found


class _FormParser(HTMLParser):
    """The first form of a page: its action, hidden inputs and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.buttons: dict[str, str] = {}  # value -> name
        self._forms = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._forms += 1
            if self._forms == 1:
                self.action = a.get("action", "")
        elif self._forms == 1 and tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")
        elif self._forms == 1 and tag == "button" and a.get("name"):
            self.buttons[a["value"]] = a["name"]


def parse_form(html: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html)
    assert parser.action is not None, "no form on the page"
    return parser


def choose(page_url: str, action: str) -> requests.Response:
    """Open a hosted page and press the button for `action`, as a browser would (no redirect followed)."""
    page = requests.get(page_url, timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    form = parse_form(page.text)
    assert action in form.buttons, f"no {action!r} button on {page_url}"
    data = {**form.hidden, form.buttons[action]: action}
    return requests.post(urljoin(page_url, form.action), data=data, allow_redirects=False, timeout=5)


def follow_form(page_url: str, response: requests.Response) -> requests.Response:
    """Submit the (auto-submitting) form of a page with its hidden fields, as the browser's script does."""
    form = parse_form(response.text)
    return requests.post(urljoin(page_url, form.action), data=form.hidden, allow_redirects=False, timeout=5)


def make_order(receiver: Receiver, **changes: object) -> OrderData:
    code = secrets.token_hex(5).upper()
    values = {
        "code": code,
        "amount": 500,
        "currency": "XOF",
        "description": "Forfait 1 jour",
        "return_url": receiver.url(f"/o/{code}"),
        "notify_url": receiver.url("/webhooks/cinetpay/tok"),
    }
    values.update(changes)
    return OrderData(**values)  # type: ignore[arg-type]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def sandbox(receiver: Receiver) -> Iterator[ProviderSandbox]:
    sandbox = ProviderSandbox().start()
    sandbox.add_fedapay_account(
        public_key=FEDAPAY_PUBLIC_KEY, webhook_url=receiver.url("/webhooks/fedapay/tok"), **FEDAPAY
    )
    sandbox.add_cinetpay_account(**CINETPAY)
    sandbox.add_feexpay_account(webhook_url=receiver.url("/webhooks/feexpay/tok"), **FEEXPAY)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A URL whose server accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


# -- a real SMTP server ---------------------------------------------------------------------------
# The server keeps one port for the whole test, so a test can stop it (nothing listens: refused),
# put a silent listener in its place, or start it again, while the app keeps the same settings.

SMTP_USER = "kiosque-mailer"
SMTP_PASSWORD = "smtp-Secret!42"
SENDER = "ventes@kiosque.test"


class MailServer:
    """A real SMTP server on a fixed local port, which a test can stop and start again.

    It offers AUTH without TLS (local test only) and accepts only the configured account.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.envelopes = []
        self.logins: list[str] = []  # one per session: the app always logs in
        self.refused: set[str] = set()  # recipients answered "no such mailbox"
        self._controller: Controller | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.refused:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    def start(self) -> None:
        # A controller's event loop is closed when it stops, so each start makes a new one.
        self._controller = Controller(self, hostname=self.host, port=self.port,
                                      authenticator=self._authenticate, auth_require_tls=False)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[EmailMessage]:
        """The messages received, parsed (a method: aiosmtpd reads every attribute of its handler
        at each connection)."""
        return [email.message_from_bytes(e.content, policy=email_policy) for e in self.envelopes]


@pytest.fixture
def smtp():
    server = MailServer()
    server.start()
    yield server
    server.stop()


def mail_settings(smtp: MailServer) -> dict:
    """The app's settings for sending through `smtp`."""
    return {
        "MAIL_SERVER": smtp.host,
        "MAIL_PORT": smtp.port,
        "MAIL_USERNAME": SMTP_USER,
        "MAIL_PASSWORD": SMTP_PASSWORD,
        "MAIL_DEFAULT_SENDER": SENDER,
        "MAIL_SUPPRESS_SEND": False,  # Flask-Mail suppresses sending under TESTING by default
    }


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()
