"""The setup kit: a RouterOS script nothing can inject into, the password switch, the downloads."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.extensions import db
from portal.models import PaymentAccount, Plan, Router
from portal.services import owners
from portal.services import setup_kit
from portal.services.setup_kit import ScriptOptions, ScriptValueError, hostname, render_script, script_string
from tests.conftest import ROUTER_PASSWORD, add_tested_router, page_text, router_values
from tests.factories import make_kit_router
from tests.support import read_literal, script_password

PURE = settings(deadline=None)  # pure functions, fast, but CI machines are shared
PUBLIC_URL = "https://kiosque.example.com"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "PUBLIC_URL": PUBLIC_URL, "KIOSQUE_SOURCE_ADDRESS": "203.0.113.7"}


@pytest.mark.parametrize("value, literal", [
    ("Maquis Wifi", '"Maquis Wifi"'),
    ('say "hi"', r'"say \"hi\""'),
    (r"C:\path", r'"C:\\path"'),
    ("$user", r'"\$user"'),
    ("why?", r'"why\?"'),
    ("Café", r'"Caf\C3\A9"'),
    ("", '""'),
])
def test_script_string_quotes_and_escapes(value, literal):
    assert script_string(value) == literal
    assert read_literal(literal) == value


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "tab\there", "nul\x00", "del\x7f", "c1\x85", "x\x1b[2J"])
def test_script_string_refuses_control_characters(value):
    with pytest.raises(ScriptValueError):
        script_string(value)


@PURE
@given(st.text())
def test_script_string_never_lets_a_value_out_of_its_quotes(value):
    try:
        literal = script_string(value)
    except ScriptValueError:
        assert any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in value)
        return
    assert literal.isascii() and "\n" not in literal and "\r" not in literal
    assert read_literal(literal) == value


@pytest.mark.parametrize("value, host", [("checkout.cinetpay.com", "checkout.cinetpay.com"),
                                         ("WiFi.Net.", "wifi.net"), ("a-b.c1", "a-b.c1")])
def test_hostname_accepts_dns_names(value, host):
    assert hostname(value) == host


@pytest.mark.parametrize("value", [
    'evil.com" ; /system reboot', "evil.com;/system reboot", "a b.com", "-a.com", "a-.com", "a..b", "",
    "x\n/system reset-configuration", "$(x).com", "a.com?", "é.com", "a" * 64 + ".com", ("a." * 127) + "com",
])
def test_hostname_refuses_anything_else(value):
    with pytest.raises(ScriptValueError):
        hostname(value)


def test_script_for_a_known_router(app):
    router = make_kit_router()
    script = render_script(router, "Secret123", ScriptOptions(http_pap_profiles=("hsprof1",), restrict_service=True),
                           kiosque_host="kiosque.example.com", source="203.0.113.7")
    assert script == """\
# Kiosque: walled garden
/ip hotspot walled-garden ip remove [find comment="kiosque"]
/ip hotspot walled-garden ip add action=accept dst-host="kiosque.example.com" comment="kiosque"
/ip hotspot walled-garden ip add action=accept dst-host="checkout.cinetpay.com" comment="kiosque"
/ip hotspot walled-garden ip add action=accept dst-host="robot-checkout.cinetpay.com" comment="kiosque"
/ip hotspot walled-garden ip add action=accept dst-host="cdn.cinetpay.com" comment="kiosque"
/ip hotspot walled-garden ip add action=accept dst-host="cdn.socket.io" comment="kiosque"
/ip hotspot walled-garden ip add action=accept dst-host="process.fedapay.com" comment="kiosque"
/ip hotspot walled-garden ip add action=accept dst-host="checkout.fedapay.com" comment="kiosque"
/ip hotspot walled-garden ip add action=accept dst-host="api.fedapay.com" comment="kiosque"
/ip hotspot walled-garden ip add action=accept dst-host="cdn.fedapay.com" comment="kiosque"
# Kiosque: API service (its port is left as it is)
/ip service set api disabled=no
{:local kqAllowed [/ip service get api address]; :if ([:len $kqAllowed] = 0) do={/ip service set api address=203.0.113.7/32} else={:if ([:typeof [:find $kqAllowed 203.0.113.7/32]] = "nil") do={/ip service set api address=($kqAllowed, 203.0.113.7/32)}}}
# Kiosque: API user
:if ([:len [/user group find name="kiosque"]] = 0) do={/user group add name="kiosque" policy=api,read,write}
/user group set [find name="kiosque"] policy=api,read,write
:if ([:len [/user find name="kiosque"]] = 0) do={/user add name="kiosque" group="kiosque" password="Secret123"}
/user set [find name="kiosque"] group="kiosque" password="Secret123" address="203.0.113.7/32" disabled=no
# Kiosque: http-pap
/ip hotspot profile set [find name="hsprof1"] login-by=cookie,http-chap,http-pap
:put "Kiosque: Maquis OK"
"""


def test_script_variants_tls_sandbox_ip_host_no_source(app):
    router = make_kit_router(use_tls=True, port=8729)
    next(a for a in router.accounts if a.provider == "fedapay").environment = "sandbox"
    script = render_script(router, "pw", ScriptOptions(), kiosque_host="127.0.0.1", source="")
    assert "/ip service set api-ssl disabled=no\n" in script and "port=" not in script
    assert 'ip add action=accept dst-address=127.0.0.1 comment="kiosque"' in script
    assert '"sandbox-process.fedapay.com"' in script and '"process.fedapay.com"' not in script
    assert "address=" not in script.replace("dst-address=", "") and "http-pap" not in script
    assert "feexpay" not in script  # the push needs no browser host


def test_hostile_names_and_profiles_stay_inside_their_quotes(app):
    evil = 'x"] ; /system reset-configuration ; :put ["$(y)?'
    router = make_kit_router(name='Evil" ; /system reboot ; :put "$x?', facts={"server_profiles": [
        {"name": evil, "dns_name": "", "login_by": "cookie,http-chap"}]})
    script = render_script(router, "pw", ScriptOptions(http_pap_profiles=(evil,)), kiosque_host="kiosque.example.com",
                           source="")
    assert r'/ip hotspot profile set [find name="x\"] ; /system reset-configuration ; :put [\"\$(y)\?"]' in script
    assert r':put "Kiosque: Evil\" ; /system reboot ; :put \"\$x\? OK"' in script
    for line in script.splitlines():  # every line is one of ours
        assert re.match(r"(# Kiosque: |/ip hotspot |/ip service set |/user |:if \(\[:len \[/user |:put )", line), line
        for literal in re.findall(r'"(?:[^"\\]|\\.)*"', line):
            read_literal(literal)


@pytest.mark.parametrize("facts, profile", [
    ({"server_profiles": [{"name": "p", "dns_name": "", "login_by": "cookie,http-pap"}]}, "p"),  # has it already
    ({"server_profiles": [{"name": "p", "dns_name": "", "login_by": ""}]}, "p"),  # login-by unknown
    ({"server_profiles": [{"name": "p", "dns_name": "", "login_by": "cookie;/system reboot"}]}, "p"),
    ({}, "hsprof1"),
])
def test_http_pap_only_for_a_known_profile_with_known_methods(app, facts, profile):
    router = make_kit_router(facts=facts)
    with pytest.raises(ScriptValueError):
        render_script(router, "pw", ScriptOptions(http_pap_profiles=(profile,)), kiosque_host="k.example", source="")


def test_hostile_hosts_and_names_are_refused(app):
    router = make_kit_router(name="line\nbreak")
    with pytest.raises(ScriptValueError):
        render_script(router, "pw", ScriptOptions(), kiosque_host="k.example", source="")
    router.name = "Maquis"
    with pytest.raises(ScriptValueError):
        render_script(router, "pw", ScriptOptions(), kiosque_host='k.example" ; /system reboot', source="")


# -- the kit page ------------------------------------------------------------------------------------


def offer_account(router: Router, provider: str = "fedapay", environment: str = "live") -> PaymentAccount:
    account = PaymentAccount(owner=router.owner, provider=provider, label=f"Mon {provider}", environment=environment,
                             credentials=json.dumps({}))
    db.session.add(account)
    router.accounts.append(account)
    db.session.commit()
    return account


def test_kit_page_lists_what_to_install(browser, router_server):
    router = add_tested_router(browser, router_server)
    account = offer_account(router)
    db.session.add(Plan(router=router, label="1 heure", profile="1h", price=200, time_limit="1h"))
    db.session.commit()
    page = page_text(browser.get(f"/owner/routers/{router.id}/kit"))
    assert f"{PUBLIC_URL}/webhooks/fedapay/{account.webhook_token}" in page
    plan = router.plans[0]
    buy = (f"{PUBLIC_URL}/r/{router.slug}?mac=$(mac-esc)&ip=$(ip-esc)&dst=$(link-orig-esc)&server=$(server-name-esc)"
           f"&plan_id={plan.id}")
    assert f'<a href="{buy.replace("&", "&amp;")}">1 heure · 200\u00a0FCFA</a>' in page
    assert f'<a href="{PUBLIC_URL}/retrieve?mac=$(mac-esc)&amp;ip=$(ip-esc)">Récupérer mon code</a>' in page
    assert 'data-copy="#webhook-' in page and 'data-copy="#button-retrieve"' in page
    assert "Ajouter http-pap au profil serveur « hsprof1 »" in page  # the sandbox allows cookie,http-chap
    assert "N'ouvrir le service API qu'à l'adresse de Kiosque (203.0.113.7/32)" in page
    assert 'id="script"' not in page  # no script, hence no password, before the owner asks for one
    router_page = page_text(browser.get(f"/owner/routers/{router.id}"))
    assert f'/owner/routers/{router.id}/kit' in router_page


def test_generated_password_is_shown_once_and_changes_nothing_yet(browser, router_server):
    router = add_tested_router(browser, router_server)
    response = browser.post(f"/owner/routers/{router.id}/kit", {"restrict_service": "y", "http_pap": "hsprof1"})
    page = page_text(response)
    assert response.status_code == 200
    password = script_password(page)
    assert len(password) == 24
    assert "/ip hotspot profile set [find name=\"hsprof1\"] login-by=cookie,http-chap,http-pap" in page
    assert "/ip service set api address=203.0.113.7/32}" in page and "port=" not in page
    assert password not in page_text(browser.get(f"/owner/routers/{router.id}/kit"))
    db.session.refresh(router)
    assert (router.api_username, router.api_password) == ("admin", ROUTER_PASSWORD)
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    assert password not in token

    download = browser.post(f"/owner/routers/{router.id}/kit/kiosque.rsc", {"token": token})
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == "attachment; filename=kiosque.rsc"
    assert download.get_data(as_text=True) == re.search(r'<textarea id="script"[^>]*>(.*?)</textarea>', page,
                                                        re.S).group(1)
    forged = browser.post(f"/owner/routers/{router.id}/kit/kiosque.rsc", {"token": "forged"})
    assert forged.status_code == 422 and "Ce script n'est plus valable" in page_text(forged)


def test_unknown_profile_for_http_pap_is_a_clear_error(browser, router_server):
    router = add_tested_router(browser, router_server)
    response = browser.post(f"/owner/routers/{router.id}/kit", {"http_pap": 'nope"]; /system reboot'})
    assert response.status_code == 422 and "pas de profil serveur" in page_text(response)


def test_confirm_switches_to_the_kiosque_user_only_once_the_router_takes_it(browser, router_server):
    router = add_tested_router(browser, router_server)
    page = page_text(browser.post(f"/owner/routers/{router.id}/kit", {}))
    password = script_password(page)
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)

    not_run = browser.post(f"/owner/routers/{router.id}/kit/confirm", {"token": token})
    assert not_run.status_code == 502 and "refuse l'utilisateur ou le mot de passe" in page_text(not_run)
    assert password in page_text(not_run)  # the same script, to run and confirm again
    db.session.expire_all()
    assert (router.api_username, router.api_password) == ("admin", ROUTER_PASSWORD)

    router_server.username, router_server.password = "kiosque", password  # the owner ran the script
    done = browser.post(f"/owner/routers/{router.id}/kit/confirm", {"token": token})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/owner/routers/{router.id}/kit#pages-status")
    db.session.expire_all()
    assert (router.api_username, router.api_password) == ("kiosque", password)
    assert browser.post(f"/owner/routers/{router.id}/test").status_code == 200


def test_a_token_only_works_for_its_own_router(browser, router_server):
    router = add_tested_router(browser, router_server)
    token = re.search(r'name="token" value="([^"]+)"', page_text(
        browser.post(f"/owner/routers/{router.id}/kit", {}))).group(1)
    other = browser.post("/owner/routers/new", router_values(router_server, name="Autre"))
    other_id = int(other.headers["Location"].rsplit("/", 1)[1])
    assert browser.post(f"/owner/routers/{other_id}/kit/confirm", {"token": token}).status_code == 422
    assert browser.post(f"/owner/routers/{other_id}/kit/kiosque.rsc", {"token": token}).status_code == 422


def test_kit_pages_need_a_csrf_token_and_the_owner(app, browser, router_server):
    router = add_tested_router(browser, router_server)
    assert browser.client.post(f"/owner/routers/{router.id}/kit", data={}).status_code == 400
    other = owners.create_owner("other@example.com", "other-password")
    theirs = Router(owner=other, name="Autre", host="192.0.2.1", api_username="a", api_password="b")
    db.session.add(theirs)
    db.session.commit()
    for url in (f"/owner/routers/{theirs.id}/kit", f"/owner/routers/{theirs.id}/kit/login.html"):
        assert browser.get(url).status_code == 404
    anonymous = app.test_client()
    assert anonymous.get(f"/owner/routers/{router.id}/kit").status_code == 302


# -- login.html --------------------------------------------------------------------------------------


def test_login_page_is_small_self_contained_and_french(browser, router_server):
    router = add_tested_router(browser, router_server)
    db.session.add_all([Plan(router=router, label="1 heure", profile="1h", price=200, time_limit="1h"),
                        Plan(router=router, label="Nuit $(chap-id)", profile="1d", price=500, data_limit_bytes=2**30),
                        Plan(router=router, label="Retiré", profile="1d", price=50, active=False)])
    db.session.commit()
    response = browser.get(f"/owner/routers/{router.id}/kit/login.html")
    body = response.get_data()
    page = body.decode()
    assert response.headers["Content-Disposition"] == "attachment; filename=login.html"
    assert len(body) < 10 * 1024
    assert '<html lang="fr">' in page and "Acheter un ticket" in page and "Se connecter" in page
    assert page.count('class="buy"') == 2 and "Retiré" not in page
    assert "Nuit &#36;(chap-id)" in page  # the router must not fill in a plan's label
    buy = (f"{PUBLIC_URL}/r/{router.slug}"
           "?mac=$(mac-esc)&amp;ip=$(ip-esc)&amp;dst=$(link-orig-esc)&amp;server=$(server-name-esc)&amp;plan_id=")
    shown = {plan.label: f'href="{buy}{plan.id}"' in page for plan in router.plans}
    assert shown == {"1 heure": True, "Nuit $(chap-id)": True, "Retiré": False}  # not the retired plan
    assert f'href="{PUBLIC_URL}/retrieve?mac=$(mac-esc)&amp;ip=$(ip-esc)"' in page
    assert "$(if chap-id)" in page and '<script src="/md5.js"></script>' in page
    assert "hexMD5('$(chap-id)'+f.password.value+'$(chap-challenge)')" in page
    assert 'action="$(link-login-only)"' in page
    # Nothing loads from another host: the only absolute URLs are Kiosque's links.
    assert set(re.findall(r'(?:src|href)="(https?://[^/"]+)', page)) == {PUBLIC_URL}
    english = browser.get(f"/owner/routers/{router.id}/kit/login.html?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in english and "Buy a ticket" in english and "Ticket code" in english
    assert browser.get(f"/owner/routers/{router.id}/kit/login.html?lang=xx").status_code == 404


def test_a_wrong_source_address_is_ignored_not_fatal(app, browser, router_server):
    app.config["KIOSQUE_SOURCE_ADDRESS"] = "not-an-address"
    router = add_tested_router(browser, router_server)
    assert setup_kit.source_address() == ""
    page = page_text(browser.post(f"/owner/routers/{router.id}/kit", {"restrict_service": "y"}))
    assert "/ip service set api disabled=no\n" in page and "address=" not in page.replace("dst-address=", "")
