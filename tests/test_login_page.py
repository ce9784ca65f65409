"""The generated hotspot login.html in a real browser, served by a test server that plays the router.

The server fills in MikroTik's page variables the way a router does, serves the page set's `/md5.js`, and
records what the page posts to `/login`: CHAP (md5 of chap-id, password and challenge) when the
router offers a challenge, the plain password otherwise.
"""

import hashlib
import html
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest

from portal.extensions import db
from portal.models import Plan, Router
from tests.conftest import ROUTER_PASSWORD, SECRETS, add_tested_router
from tests.factories import make_account

PUBLIC_URL = "https://kiosque.example.com"
CLIENT = {"mac": "AA:BB:CC:00:11:22", "ip": "10.5.50.77", "server-name": "hotspot1", "link-orig": "http://example.com/"}

# The md5.js of Kiosque's page set (standard MD5 over the low byte of each character, as RouterOS's own).
MD5_JS = (Path(__file__).parent.parent / "portal/templates/hotspot/md5.js").read_text()
_IF = re.compile(r"\$\(if ([\w-]+)\)(.*?)(?:\$\(else\)(.*?))?\$\(endif\)", re.S)
_VAR = re.compile(r"\$\(([\w-]+)\)")


def fill_in(page: str, variables: dict[str, str]) -> str:
    """What a router serves for `page`: `$(if v)…$(else)…$(endif)`, then `$(v)` and `$(v-esc)`."""
    page = _IF.sub(lambda m: m.group(2) if variables.get(m.group(1)) else (m.group(3) or ""), page)

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables and name.endswith("-esc"):
            return quote(variables.get(name[:-4], ""), safe="")
        return variables.get(name, "")

    return _VAR.sub(value, page)


def octal(data: bytes) -> str:
    """Bytes as a router writes chap-id and chap-challenge: octal escapes inside a JS string."""
    return "".join(f"\\{byte:03o}" for byte in data)


class FakeRouter:
    """An HTTP server that serves the login page as a router would and records the logins posted."""

    def __init__(self, template: str, chap: tuple[bytes, bytes] | None):
        self.template, self.chap = template, chap
        self.logins: list[dict[str, str]] = []
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body: str, content_type: str = "text/html"):
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                owner.requests.append(f"GET {self.path}")
                if self.path == "/md5.js":
                    return self._send(MD5_JS, "application/javascript")
                return self._send(owner.page())

            def do_POST(self):
                owner.requests.append(f"POST {self.path}")
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                owner.logins.append({k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()})
                self._send("<p>You are logged in</p>")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def page(self) -> str:
        variables = {**CLIENT, "link-login-only": f"{self.url}/login", "username": "", "error": ""}
        if self.chap:
            variables.update({"chap-id": octal(self.chap[0]), "chap-challenge": octal(self.chap[1])})
        return fill_in(self.template, variables)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def page(chromium):
    """A page of its own in tests/browser.py's chromium."""
    context = chromium.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture
def app_config(app_config):
    return {**app_config, "PUBLIC_URL": PUBLIC_URL}


def login_template(browser, owner, user_mode: str = "vc") -> tuple[str, Router]:
    router = Router(owner=owner, name="Maquis", host="192.0.2.10", api_username="admin",
                    api_password=ROUTER_PASSWORD, user_mode=user_mode)
    db.session.add_all([router, Plan(router=router, label="1 heure", profile="1h", price=200, time_limit="1h")])
    db.session.commit()
    response = browser.get(f"/owner/routers/{router.id}/kit/login.html")
    assert response.status_code == 200
    return response.get_data(as_text=True), router


def chap_password(chap: tuple[bytes, bytes], password: str) -> str:
    return hashlib.md5(chap[0] + password.encode() + chap[1]).hexdigest()


def test_fill_in_plays_the_router():
    page = "$(if chap-id)C $(chap-id)$(else)P$(endif)|$(mac-esc)|$(link-orig)"
    assert fill_in(page, {"chap-id": "\\001", **CLIENT}) == "C \\001|AA%3ABB%3ACC%3A00%3A11%3A22|http://example.com/"
    assert fill_in(page, CLIENT) == "P|AA%3ABB%3ACC%3A00%3A11%3A22|http://example.com/"


def test_md5_js_is_standard_md5(page):
    page.set_content(f"<script>{MD5_JS}</script>")
    for text in ("", "abc", "a" * 100, "\u00a9pass\u00ff\u0001"):
        expected = hashlib.md5(text.encode("latin-1")).hexdigest()
        assert page.evaluate("t => hexMD5(t)", text) == expected


def test_chap_login_from_the_fragment_kiosque_sends(browser, owner, page):
    template, router = login_template(browser, owner)
    chap = (secrets.token_bytes(1), secrets.token_bytes(16))
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    with FakeRouter(template, chap) as fake:
        with page.expect_request(lambda r: r.method == "POST"):
            page.goto(f"{fake.url}/login?dst=http%3A%2F%2Fexample.com%2F#username=abc234&password=abc234")
        page.wait_for_load_state()
        assert fake.logins == [{"username": "abc234", "password": chap_password(chap, "abc234"),
                                "dst": "http://example.com/", "popup": "true"}]
        page.go_back()
        assert "#" not in page.url and "abc234" not in page.url  # the fragment was cleared
        assert len(fake.logins) == 1
        # Nothing but the router itself was asked for anything (no external resource).
        assert asked and all(url.startswith(fake.url + "/") for url in asked), asked


def test_chap_login_typed_by_the_buyer(browser, owner, page):
    template, router = login_template(browser, owner)
    chap = (b"\x00", bytes(range(250, 256)) + b"\\'\"$\n\r\x00xyz")
    with FakeRouter(template, chap) as fake:
        page.goto(f"{fake.url}/login")
        buy = page.locator("a.buy")
        assert buy.count() == 1
        assert buy.get_attribute("href") == (f"{PUBLIC_URL}/r/{router.slug}?mac=AA%3ABB%3ACC%3A00%3A11%3A22"
                                             f"&ip=10.5.50.77&dst=http%3A%2F%2Fexample.com%2F&server=hotspot1"
                                             f"&plan_id={router.plans[0].id}")
        assert page.locator("a", has_text="Code perdu").get_attribute("href") == (
            f"{PUBLIC_URL}/retrieve?mac=AA%3ABB%3ACC%3A00%3A11%3A22&ip=10.5.50.77")
        page.fill("input[name=username]", "kq9m2")
        with page.expect_request(lambda r: r.method == "POST"):
            page.click("text=Se connecter")
        assert fake.logins[0]["username"] == "kq9m2"
        assert fake.logins[0]["password"] == chap_password(chap, "kq9m2")


def test_each_plan_button_opens_the_plans_page_with_its_plan_chosen(app, browser, owner, page):
    template, router = login_template(browser, owner)
    db.session.add(Plan(router=router, label="1 jour", profile="1d", price=500, time_limit="1d"))
    make_account(owner, offered_on=router)
    template = browser.get(f"/owner/routers/{router.id}/kit/login.html").get_data(as_text=True)
    with FakeRouter(template, chap=None) as fake:
        page.goto(f"{fake.url}/login")
        buttons = page.locator("a.buy")
        links = [buttons.nth(i).get_attribute("href") for i in range(buttons.count())]
    assert len(links) == 2
    for plan, link in zip(router.plans, links):
        plans_page = app.test_client().get(link.removeprefix(PUBLIC_URL)).get_data(as_text=True)
        checked = re.findall(r'name="plan_id" value="(\d+)"[^>]*checked', plans_page)
        assert checked == [str(plan.id)], (plan.label, checked)
        assert 'name="mac" value="AA:BB:CC:00:11:22"' in plans_page


def test_pap_login_from_the_fragment_sends_the_plain_password(browser, owner, page):
    template, router = login_template(browser, owner, user_mode="up")
    with FakeRouter(template, chap=None) as fake:
        with page.expect_request(lambda r: r.method == "POST"):
            page.goto(f"{fake.url}/login#username=kq9m2&password=48213")
        page.wait_for_load_state()
        assert fake.logins == [{"username": "kq9m2", "password": "48213", "dst": "http://example.com/",
                                "popup": "true"}]
        assert "/md5.js" not in " ".join(fake.requests)  # no CHAP, no md5.js


def test_no_fragment_no_login(browser, owner, page):
    template, router = login_template(browser, owner)
    with FakeRouter(template, chap=(b"\x01", b"\x02" * 16)) as fake:
        page.goto(f"{fake.url}/login#other=1")
        page.wait_for_load_state()
        assert fake.logins == [] and page.locator("h1").inner_text() == "Maquis"


def test_pap_voucher_typed_by_the_buyer(browser, owner, page):
    template, router = login_template(browser, owner)
    with FakeRouter(template, chap=None) as fake:
        page.goto(f"{fake.url}/login")
        assert page.locator("input[name=password]").get_attribute("type") == "hidden"  # a voucher is one code
        page.fill("input[name=username]", "kq9m2")
        with page.expect_request(lambda r: r.method == "POST"):
            page.click("text=Se connecter")
        assert (fake.logins[0]["username"], fake.logins[0]["password"]) == ("kq9m2", "kq9m2")


def test_chap_login_with_the_page_set_the_script_fetches(app, browser, router_server, page):
    """The login.html the kit script fetches through its one-time link logs in with CHAP, md5.js from the set."""
    router = add_tested_router(browser, router_server)
    script = html.unescape(browser.post(f"/owner/routers/{router.id}/kit", {}).get_data(as_text=True))
    link = re.search(r'url="' + re.escape(PUBLIC_URL) + r'(/p/[^/"]+)/login\.html"', script).group(1)
    SECRETS.add(link.split("/")[2])
    anonymous = app.test_client()
    template = anonymous.get(f"{link}/login.html").get_data(as_text=True)
    assert anonymous.get(f"{link}/md5.js").get_data(as_text=True).strip() == MD5_JS.strip()
    chap = (secrets.token_bytes(1), secrets.token_bytes(16))
    with FakeRouter(template, chap) as fake:
        with page.expect_request(lambda r: r.method == "POST"):
            page.goto(f"{fake.url}/login#username=abc234&password=abc234")
        assert fake.logins[0]["password"] == chap_password(chap, "abc234")
        assert "GET /md5.js" in fake.requests
