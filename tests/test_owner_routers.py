import re

from sqlalchemy import text

from portal.extensions import db
from portal.models import Order, Router
from tests.conftest import ROUTER_PASSWORD, Listener, free_port, page_text, router_values
from tests.factories import make_account

# The date handling of stock Mikhmon v3 profiles: month and year by fixed positions of mmm/dd/yyyy.
STOCK_V3_ON_LOGIN = (
    ':put (",rem,300,2h,0,,Disable,"); {:local date [ /system clock get date ];'
    ':local year [ :pick $date 7 11 ];:local month [ :pick $date 0 3 ];}'
)


def add_router(browser, server, **overrides) -> Router:
    response = browser.post("/owner/routers/new", router_values(server, **overrides))
    assert response.status_code == 302, page_text(response)
    return db.session.scalar(db.select(Router).order_by(Router.id.desc()))


def test_create_router_encrypts_the_password_and_never_shows_it(browser, router_server):
    router = add_router(browser, router_server)
    assert router.api_password == ROUTER_PASSWORD
    raw = db.session.execute(text("SELECT api_password FROM router")).scalar()
    assert ROUTER_PASSWORD not in raw
    page = page_text(browser.get(f"/owner/routers/{router.id}/edit"))
    assert ROUTER_PASSWORD not in page and raw not in page
    assert "Laissez vide pour garder le mot de passe" in page


def test_blank_password_keeps_the_stored_one(browser, router_server):
    router = add_router(browser, router_server)
    response = browser.post(f"/owner/routers/{router.id}/edit",
                            router_values(router_server, api_password="", name="Renamed"))
    assert response.status_code == 302
    db.session.refresh(router)
    assert router.name == "Renamed" and router.api_password == ROUTER_PASSWORD


def test_new_router_needs_a_password_and_valid_fields(browser, router_server):
    response = browser.post("/owner/routers/new", router_values(router_server, api_password=""))
    assert response.status_code == 422
    assert "mot de passe de l'API est obligatoire" in page_text(response)
    bad = browser.post("/owner/routers/new", router_values(
        router_server, port="99999", host="bad host;", prefix="a b", currency="francs",
        name_length="12", user_mode="up", charset="num"))
    page = page_text(bad)
    assert bad.status_code == 422
    for message in ("Adresse IP ou nom d'hôte attendu", "Lettres et chiffres seulement",
                    "N'est pas un choix valide", "qu'en mode voucher"):
        assert message in page
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 0


def test_the_hotspots_country_is_chosen_among_those_served(browser, router_server):
    form = page_text(browser.get("/owner/routers/new"))
    assert '<option selected value="bj">Bénin</option>' in form and '<option value="ci">Côte d’Ivoire</option>' in form
    router = add_router(browser, router_server, country="ci")
    assert router.country == "ci"
    refused = browser.post(f"/owner/routers/{router.id}/edit", router_values(router_server, country="fr"))
    assert refused.status_code == 422 and "N'est pas un choix valide." in page_text(refused)
    db.session.refresh(router)
    assert router.country == "ci"


def test_router_names_are_unique_per_owner(browser, router_server):
    add_router(browser, router_server)
    response = browser.post("/owner/routers/new", router_values(router_server))
    assert response.status_code == 422 and "déjà un routeur avec ce nom" in page_text(response)


def test_connection_test_reads_and_stores_router_facts(browser, router_server):
    router = add_router(browser, router_server)
    response = browser.post(f"/owner/routers/{router.id}/test", headers={"HX-Request": "true"})
    page = page_text(response)
    assert response.status_code == 200 and "Connexion réussie" in page
    assert "<html" not in page  # a fragment for htmx
    db.session.refresh(router)
    assert router.identity == "Kiosque-Sandbox" and router.ros_version.startswith("6.49")
    assert {"1h", "1d", "1w"} <= set(router.profile_names)
    assert router.dns_name == "wifi.net"  # taken from the hotspot server profile
    assert router.last_contact_at is not None
    # login-by cookie,http-chap: the owner is told what it means, as a note, since Kiosque's login.html does CHAP
    assert 'class="muted">Sans http-pap, la page login.html de Kiosque connecte' in page
    assert "http-pap" not in "".join(re.findall(r'class="warning">[^<]*', page))


def test_connection_test_without_javascript_renders_the_page(browser, router_server):
    router = add_router(browser, router_server)
    page = page_text(browser.post(f"/owner/routers/{router.id}/test"))
    assert "<html" in page and "Connexion réussie" in page


def test_ros7_with_stock_mikhmon_scripts_is_warned(browser, router_server):
    router_server.version = "7.16 (stable)"
    router_server.add_user_profile("2h", on_login=STOCK_V3_ON_LOGIN)
    router = add_router(browser, router_server)
    page = page_text(browser.post(f"/owner/routers/{router.id}/test", headers={"HX-Request": "true"}))
    assert "n'expirent plus" in page and re.search(r"d'origine \([^)]*\b2h\b", page)


def test_connection_failures_have_clear_french_messages(browser, router_server):
    wrong = add_router(browser, router_server, api_password="wrong-password", name="Wrong")
    page = page_text(browser.post(f"/owner/routers/{wrong.id}/test", headers={"HX-Request": "true"}))
    assert "refuse l'utilisateur ou le mot de passe" in page
    assert "wrong-password" not in page

    # A silent router and a closed port get one message (tests/test_egress.py: every such target).
    router_server.mode = "hang"
    hung = add_router(browser, router_server, name="Hung")
    page = page_text(browser.post(f"/owner/routers/{hung.id}/test", headers={"HX-Request": "true"}))
    assert "n'a pas pu ouvrir de session API" in page and "service API est activé (/ip service)" in page

    router_server.mode = "refuse"
    refused = add_router(browser, router_server, name="Refused")
    page = page_text(browser.post(f"/owner/routers/{refused.id}/test", headers={"HX-Request": "true"}))
    assert "n'a pas pu ouvrir de session API" in page


def test_the_connection_test_says_the_same_for_every_target_that_is_not_a_router(app, browser, owner):
    """Closed, silent, another protocol or refused by the egress policy: nothing tells them apart."""
    app.config["ROUTER_TIMEOUT"] = 0.5

    def said(host: str, port: int) -> str:
        router = Router(owner=owner, name=f"{host}:{port}", host=host, port=port, api_username="admin",
                        api_password=ROUTER_PASSWORD)
        db.session.add(router)
        db.session.commit()
        return page_text(browser.post(f"/owner/routers/{router.id}/test", headers={"HX-Request": "true"}))

    http = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with Listener() as silent, Listener(answer=http) as web, Listener(answer=b"-ERR unknown command\r\n") as redis:
        pages = {
            "closed": said("127.0.0.1", free_port()),
            "silent": said("127.0.0.1", silent.port),
            "http": said("127.0.0.1", web.port),
            "redis": said("127.0.0.1", redis.port),
            "metadata address": said("169.254.169.254", 8728),
            "private address": said("10.20.30.40", 8728),
        }
    assert len(set(pages.values())) == 1, pages
    assert "Kiosque n'a pas pu ouvrir de session API avec ce routeur" in pages["closed"]
    assert web.connections == 1 and silent.connections == 1  # the allowed ones were tried, once each


def test_a_dns_name_read_from_the_router_is_held_to_the_forms_check(browser, router_server):
    router_server.add_server("hotspot2", profile="hsprof2")
    router_server.add_server_profile("hsprof2", dns_name='evil.example/login?x="><script>')
    router = add_router(browser, router_server, hotspot_server="hotspot2")
    response = browser.post(f"/owner/routers/{router.id}/test", headers={"HX-Request": "true"})
    db.session.refresh(router)
    assert router.dns_name == ""  # not stored: the buyer's login link would be built from it
    assert "n'est pas un nom d'hôte valide" in page_text(response)
    assert "<script>" not in response.get_data(as_text=True)  # shown among the router's facts, escaped

    router_server.add_server_profile("hsprof3", dns_name="login.wifi.example")
    router_server.add_server("hotspot3", profile="hsprof3")
    fine = add_router(browser, router_server, hotspot_server="hotspot3", name="Fine")
    page = page_text(browser.post(f"/owner/routers/{fine.id}/test", headers={"HX-Request": "true"}))
    db.session.refresh(fine)
    assert fine.dns_name == "login.wifi.example" and "n'est pas un nom d'hôte valide" not in page


def test_ticket_settings_sample(browser):
    page = page_text(browser.get("/owner/routers/sample?user_mode=vc&name_length=8&charset=lower&prefix=ab"))
    codes = re.findall(r"<code>([^<]+)</code>", page)
    assert len(codes) == 3 and all(c.startswith("ab") and len(c) == 10 and c[-4:].isdigit() for c in codes)
    up = page_text(browser.get("/owner/routers/sample?user_mode=up&name_length=4&charset=upper"))
    pairs = re.findall(r"<code>([^<]+)</code> / <code>([^<]+)</code>", up)
    assert len(pairs) == 3 and all(u.isupper() and p.isdigit() for u, p in pairs)


def test_delete_router_after_its_confirmation_page(browser, router_server):
    router = add_router(browser, router_server)
    page = page_text(browser.get(f"/owner/routers/{router.id}/delete"))
    assert f"Supprimer le routeur {router.name} ?" in page and "Oui, supprimer" in page
    assert db.session.scalar(db.select(Router).where(Router.id == router.id)) is not None  # a look deletes nothing
    assert browser.post(f"/owner/routers/{router.id}/delete").status_code == 303
    assert db.session.scalar(db.select(Router).where(Router.id == router.id)) is None


def test_htmx_deletes_go_to_the_list_and_a_refusal_to_its_confirmation_page(browser, router_server):
    router = add_router(browser, router_server)
    db.session.add(Order(intent="i-1", owner_id=router.owner_id, router_id=router.id, account_id=make_account(
        router.owner).id, provider="fedapay", plan_label="1h", profile="1h", amount=100, currency="XOF"))
    db.session.commit()
    refused = browser.post(f"/owner/routers/{router.id}/delete", headers={"HX-Request": "true"})
    assert refused.headers["HX-Redirect"] == f"/owner/routers/{router.id}/delete"
    assert "ventes en ligne" in page_text(browser.get(refused.headers["HX-Redirect"]))
    db.session.execute(db.delete(Order))
    db.session.commit()
    done = browser.post(f"/owner/routers/{router.id}/delete", headers={"HX-Request": "true"})
    assert done.headers["HX-Redirect"] == "/owner/routers/"
    assert db.session.scalar(db.select(Router).where(Router.id == router.id)) is None


def test_router_list_shows_health(browser, router_server):
    router = add_router(browser, router_server)
    browser.post(f"/owner/routers/{router.id}/test")
    page = page_text(browser.get("/owner/routers/"))
    assert "RouterOS 6.49.10" in page and "dernier contact" in page
    assert "http-pap" not in page  # not a warning: Kiosque's login.html logs in with CHAP
    db.session.refresh(router)  # as the connection test left it
    router.down_since = router.last_contact_at
    db.session.commit()
    assert "Injoignable depuis" in page_text(browser.get("/owner/routers/"))


def test_the_currency_is_chosen_from_those_the_providers_charge(browser, router_server):
    page = page_text(browser.get("/owner/routers/new"))
    options = re.findall(r'<option (selected )?value="([A-Z]{3})">([^<]+)</option>', page)
    assert [(selected, code) for selected, code, _ in options][:3] == [("selected ", "XOF"), ("", "GNF"), ("", "XAF")]
    assert "XOF · franc CFA (BCEAO)" in page
    router = add_router(browser, router_server)
    router.currency = "EUR"  # typed when the field was free text: kept, not silently swapped on the next save
    db.session.commit()
    assert '<option selected value="EUR">' in page_text(browser.get(f"/owner/routers/{router.id}/edit"))
    assert browser.post(f"/owner/routers/{router.id}/edit", router_values(router_server, currency="EUR")).status_code == 302
    refused = browser.post(f"/owner/routers/{router.id}/edit", router_values(router_server, currency="BTC"))
    assert refused.status_code == 422
