"""Reading the replaced guide's webhook parameters and buy links; nothing saved until the owner says so."""

import re
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.extensions import db
from portal.models import Plan, Router
from portal.services.guide_import import (
    BuyLink,
    GuideError,
    GuideRouter,
    parse_buy_link,
    parse_buy_links,
    parse_webhook,
)
from tests.conftest import add_tested_router, page_text, router_values

PURE = settings(deadline=None)  # pure functions, fast, but CI machines are shared
CINETPAY_WEBHOOK = (
    "https://pay.example.net/pay_callback/cinetpay/Maquis%20Wifi?mikadminuser=admin&mikadminpass=p%40ss%26word"
    "&mikusermode=up&miknamelength=5&mikcharacter=mix1&miknotifemail=owner%40example.com&mikcurrency=FCFA"
    "&mikuserprefix=mq&mikaccessuuid=1234-abcd&mikdnsname=Cyber.Net&mikserver=hotspot1"
)
FEDAPAY_HEADERS = """\
https://pay.example.net/pay_callback/fedapay/Buvette
mikadminuser: admin
mikadminpass: s3cret:with:colons
mikusermode: vc
miknamelength: 12
mikcharacter: lower
mikcurrency: cfa
"""
FEDAPAY_LINK = ("https://pay.example.net/buy-mikhmon?nasid=$(server-name)&amount=100&currency=FCFA&profile_name=30min"
                "&timelimit=30m&datalimit=10M&mac=$(mac)&ip=$(ip)&link-status=$(link-status-esc)&pub_key=pk_live_x")
CINETPAY_TAG = ('<a class="btn" href="https://pay.example.net/buy-mikhmon-cinetpay?nasid=$(server-name)&amp;amount=500'
                '&amp;currency=FCFA&amp;profile_name=4H&amp;datalimit=0M&amp;timelimit=4h&amp;mac=$(mac)'
                '&amp;api_key=SECRETKEY&amp;siteid=105">4 heures</a>')


def test_cinetpay_webhook_url():
    settings = parse_webhook(CINETPAY_WEBHOOK)
    assert settings == GuideRouter(
        name="Maquis Wifi", api_username="admin", api_password="p@ss&word", user_mode="up", name_length=5,
        charset="mix1", prefix="mq", dns_name="cyber.net", hotspot_server="hotspot1", currency="XOF",
        notify_email="owner@example.com")
    assert "p@ss&word" not in repr(settings)


def test_fedapay_header_list_with_length_clamped():
    settings = parse_webhook(FEDAPAY_HEADERS)
    assert (settings.name, settings.api_username, settings.api_password) == ("Buvette", "admin", "s3cret:with:colons")
    assert (settings.user_mode, settings.name_length, settings.currency) == ("vc", 8, "XOF")
    assert settings.notes == ("Longueur du code ramenée de 12 à 8 (de 3 à 8).",)
    assert parse_webhook("mikadminuser=admin&mikcurrency=GNF").currency == "GNF"  # a bare query string


@pytest.mark.parametrize("text, expected", [
    ("", "Aucun paramètre du guide"),
    ("https://pay.example.net/pay_callback/cinetpay/x?foo=bar", "Aucun paramètre du guide"),
    ("mikusermode: both", "mikusermode : « up » ou « vc » attendu."),
    ("miknamelength: six", "miknamelength : un nombre est attendu."),
    ("mikcharacter: emoji", "mikcharacter : une de ces valeurs est attendue : lower, upper"),
    ("miknotifemail: nobody", "miknotifemail : une adresse e-mail est attendue."),
    ("mikuserprefix: a-b", "mikuserprefix : 6 lettres ou chiffres au plus."),
    ("mikdnsname: not a host", "mikdnsname : un nom DNS est attendu"),
    ("mikcurrency: francs", "mikcurrency : FCFA ou un code ISO"),
    ("mikusermode: up\nmikcharacter: num", "« num » n'est possible qu'en mode voucher"),
    ("http://[::1/pay_callback/x/y?mikadminpass=hunter2", "Adresse illisible"),
    ("https://x/pay_callback/cinetpay/a%0Ab?mikadminuser=a", "nom dans l'URL"),
])
def test_malformed_webhook_parameters_are_named(text, expected):
    with pytest.raises(GuideError) as caught:
        parse_webhook(text)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems
    assert "hunter2" not in str(caught.value)


def test_every_bad_parameter_is_reported_at_once():
    with pytest.raises(GuideError) as caught:
        parse_webhook("mikusermode: x\nmiknamelength: y\nmikcurrency: zz")
    assert len(caught.value.problems) == 3


@PURE
@given(st.text(max_size=300))
def test_webhook_parser_raises_only_its_own_error(text):
    try:
        settings = parse_webhook(text)
    except GuideError as exc:
        assert exc.problems
    else:
        assert 3 <= settings.name_length <= 8 and settings.user_mode in ("vc", "up")


@PURE
@given(st.lists(st.sampled_from(["mikadminuser", "mikusermode", "miknamelength", "mikcharacter", "mikdnsname",
                                 "mikcurrency", "mikuserprefix", "miknotifemail", "mikserver"]), min_size=1),
       st.lists(st.text(max_size=20), min_size=9, max_size=9))
def test_webhook_parser_on_guide_shaped_input(names, values):
    text = "\n".join(f"{name}: {value}" for name, value in zip(names, values))
    try:
        parse_webhook(text)
    except GuideError as exc:
        assert exc.problems


def test_buy_links_in_every_shape():
    assert parse_buy_link(FEDAPAY_LINK) == BuyLink(profile="30min", price=100, time_limit="30m",
                                                   data_limit_bytes=10 * 2**20)
    assert parse_buy_link(CINETPAY_TAG) == BuyLink(profile="4H", price=500, time_limit="4h", data_limit_bytes=0)
    link = parse_buy_link("/buy-mikhmon-feexpay?amount=1000&profile_name=1d&timelimit=24h&datalimit=1G&token=fp_x")
    assert (link.time_limit, link.data_limit_bytes) == ("1d", 2**30)
    assert "token" not in link.query() and "SECRETKEY" not in parse_buy_link(CINETPAY_TAG).query()
    assert parse_buy_link(link.query()) == link


@pytest.mark.parametrize("text, expected", [
    ("https://x/buy-mikhmon?amount=100", "profile_name"),
    ("https://x/buy-mikhmon?profile_name=1h&amount=cent", "amount"),
    ("https://x/buy-mikhmon?profile_name=1h&amount=0", "amount"),
    ("https://x/buy-mikhmon?profile_name=1h&amount=100&timelimit=1x", "timelimit"),
    ("https://x/buy-mikhmon?profile_name=1h&amount=100&datalimit=lots", "datalimit"),
])
def test_malformed_buy_links_are_named(text, expected):
    with pytest.raises(GuideError) as caught:
        parse_buy_link(text)
    assert any(problem.startswith(expected) for problem in caught.value.problems)


def test_several_links_keep_the_good_ones_and_number_the_bad():
    parsed = parse_buy_links(f"{FEDAPAY_LINK}\n\n  not a link\n{CINETPAY_TAG}\n{FEDAPAY_LINK}\n")
    assert [link.profile for link in parsed.links] == ["30min", "4H"]
    assert len(parsed.problems) == 1 and parsed.problems[0].startswith("Ligne 2 : profile_name")
    with pytest.raises(GuideError):
        parse_buy_links("  \n ")


@PURE
@given(st.text(max_size=300))
def test_buy_link_parsers_raise_only_their_own_error(text):
    for parse in (parse_buy_link, parse_buy_links):
        try:
            parse(text)
        except GuideError as exc:
            assert exc.problems


@PURE
@given(st.dictionaries(st.sampled_from(["profile_name", "amount", "timelimit", "datalimit", "nasid"]),
                       st.text(max_size=12)))
def test_buy_link_parser_on_link_shaped_input(params):
    try:
        link = parse_buy_link("https://x/buy-mikhmon?" + urlencode(params))
    except GuideError:
        return
    assert parse_buy_link(link.query()) == link


# -- the pages ---------------------------------------------------------------------------------------


def test_import_guide_prefills_the_router_form_and_saves_nothing(browser, router_server):
    assert "Importer depuis le guide" in page_text(browser.get("/owner/routers/"))
    assert browser.get("/owner/routers/import-guide").status_code == 200
    response = browser.post("/owner/routers/import-guide", {"guide": CINETPAY_WEBHOOK})
    page = page_text(response)
    assert response.status_code == 200
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 0
    for name, value in (("name", "Maquis Wifi"), ("api_username", "admin"), ("api_password", "p@ss&word"),
                        ("dns_name", "cyber.net"), ("prefix", "mq"), ("notify_email", "owner@example.com"),
                        ("hotspot_server", "hotspot1"), ("name_length", "5")):
        assert re.search(rf'name="{name}"[^>]*value="{re.escape(value)}"', page), name
    for chosen in ("mix1", "up", "XOF"):
        assert re.search(rf'<option selected value="{chosen}">', page), chosen

    # The prefilled form posts back here and goes on, body and all, to the router form's own view.
    form = router_values(router_server, name="Maquis Wifi", api_username="admin", api_password="p@ss&word",
                         user_mode="up", charset="mix1", name_length="5")
    handed_on = browser.post("/owner/routers/import-guide", form)
    assert handed_on.status_code == 307 and handed_on.headers["Location"] == "/owner/routers/new"
    assert "p@ss" not in handed_on.headers["Location"]
    saved = browser.post(handed_on.headers["Location"], form)  # what a browser does with a 307
    assert saved.status_code == 302
    router = db.session.scalar(db.select(Router))
    assert (router.name, router.api_password, router.charset, router.user_mode) == ("Maquis Wifi", "p@ss&word",
                                                                                    "mix1", "up")


def test_import_guide_errors_are_shown_and_the_paste_not_echoed(browser):
    response = browser.post("/owner/routers/import-guide", {"guide": "mikadminpass: hunter2\nmikusermode: x"})
    page = page_text(response)
    assert response.status_code == 422
    assert "mikusermode : « up » ou « vc » attendu." in page and "hunter2" not in page


def test_length_note_is_shown_above_the_form(browser):
    page = page_text(browser.post("/owner/routers/import-guide", {"guide": FEDAPAY_HEADERS}))
    assert "Longueur du code ramenée de 12 à 8" in page and 'name="name_length"' in page


def test_import_buy_links_proposes_then_creates_plans(browser, router_server):
    router = add_tested_router(browser, router_server)
    db.session.add(Plan(router=router, label="1h", profile="1h", price=150))
    db.session.commit()
    url = f"/owner/routers/{router.id}/plans/import-links"
    assert browser.get(url).status_code == 200
    links = "\n".join([
        "https://x/buy-mikhmon?profile_name=1h&amount=200&timelimit=60m&datalimit=500M&pub_key=pk_live_SECRET",
        "https://x/buy-mikhmon?profile_name=1d&amount=500&timelimit=1d&datalimit=0M",
        "https://x/buy-mikhmon?profile_name=nope&amount=50&timelimit=30m",
        "https://x/buy-mikhmon?profile_name=1w&amount=abc",
    ])
    proposals = browser.post(url, {"links": links})
    page = page_text(proposals)
    assert proposals.status_code == 200
    assert "Ligne 4 : amount" in page and "pk_live_SECRET" not in page
    assert "Le routeur n'a pas de profil « nope »." in page and "1 h · 500 Mo" in page
    chosen = re.findall(r'name="link" value="([^"]+)"', page)
    assert len(chosen) == 3
    assert db.session.scalar(db.select(db.func.count(Plan.id))) == 1

    created = browser.post(url, {"link": [c.replace("&amp;", "&") for c in chosen]})
    report = page_text(created)
    assert created.status_code == 422  # one of them failed
    assert "Forfait créé : 1h (200) (200\u00a0FCFA)" in report and "Forfait créé : 1d" in report
    assert "nope : Le routeur n'a pas de profil « nope »." in report
    plans = {p.label: p for p in db.session.scalars(db.select(Plan).where(Plan.router_id == router.id))}
    assert set(plans) == {"1h", "1h (200)", "1d"}
    assert (plans["1h (200)"].time_limit, plans["1h (200)"].data_limit_bytes, plans["1h (200)"].price) == (
        "1h", 500 * 2**20, 200)
    assert plans["1d"].data_limit_bytes == 0 and plans["1d"].currency == "XOF"


def test_import_buy_links_errors(browser, router_server):
    router = add_tested_router(browser, router_server)
    url = f"/owner/routers/{router.id}/plans/import-links"
    nothing = browser.post(url, {"links": "hello\nworld"})
    assert nothing.status_code == 422 and "Ligne 2 : profile_name" in page_text(nothing)
    forged = browser.post(url, {"link": "profile_name=1h&amount=-3"})
    assert forged.status_code == 422 and "amount" in page_text(forged)
    assert db.session.scalar(db.select(db.func.count(Plan.id))) == 0
