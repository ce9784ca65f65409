"""The settings file in a real browser at 360 px: an owner downloads their settings from one Kiosque
server and uploads them on another (its own database), as a phone would, without any secret."""

import json

import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import expect

from portal import create_app
from portal.extensions import db
from portal.models import Router
from portal.services import accounts as account_service
from portal.services import owners
from tests.browser import BUYER, serve
from tests.conftest import CREDENTIALS
from tests.factories import make_owner, make_plan, make_router

PHONE = {**BUYER}  # the owner on a phone: 360 px wide, in French
NETWORKS = "192.0.2.0/24"  # the operator's VPN on both servers (a documentation range)


@pytest.fixture
def app_config(app_config) -> dict:
    return {**app_config, "ROUTER_ALLOWED_NETWORKS": NETWORKS}


@pytest.fixture
def first_server(app):
    server, thread, base = serve(app)
    yield base
    server.shutdown()
    thread.join(5)


@pytest.fixture
def second_server(tmp_path):
    other = create_app({"ENV": "testing", "TESTING": True, "SECRET_KEY": "second-secret",
                        "ENCRYPTION_KEY": Fernet.generate_key().decode(), "RATELIMIT_ENABLED": False,
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'second.db'}",
                        "ROUTER_ALLOWED_NETWORKS": NETWORKS})
    with other.app_context():
        db.create_all()
        owners.create_owner("akwa@example.com", "second-password")
    server, thread, base = serve(other)
    yield other, base
    server.shutdown()
    thread.join(5)
    with other.app_context():
        db.engine.dispose()


def sign_in(page, base: str, password: str) -> None:
    page.goto(base + "/owner/login")
    page.get_by_label("E-mail").fill("akwa@example.com")
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("h1")).to_have_text("Ventes")


def fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_settings_download_then_upload_on_another_server(first_server, second_server, contexts, shots, tmp_path):
    owner = make_owner("akwa@example.com", password="first-password")
    router = make_router(owner, name="Maquis Akwa", prefix="MA", name_length=5, api_password="r0uter-Secret!")
    make_plan(router, label="1 heure", price=200)
    make_plan(router, label="1 jour", price=500, time_limit="1d")
    account_service.save_account(owner, None, "feexpay", {"label": "FeexPay", "active": True, "networks": ["mtn"],
                                                          **CREDENTIALS["feexpay"]}, CREDENTIALS["feexpay"])
    other, second_base = second_server

    page = contexts(**PHONE, accept_downloads=True).new_page()
    sign_in(page, first_server, "first-password")
    page.get_by_role("link", name="Réglages").click()
    expect(page.locator("h1")).to_have_text("Réglages")
    assert fits_the_screen(page)
    shots(page, "settings-first-server")
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger mes réglages").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    exported = saved.read_text()
    assert saved.name == "kiosque-settings.json"
    assert "r0uter-Secret!" not in exported and CREDENTIALS["feexpay"]["token"] not in exported
    assert [r["name"] for r in json.loads(exported)["routers"]] == ["Maquis Akwa"]

    phone = contexts(**PHONE).new_page()
    sign_in(phone, second_base, "second-password")
    phone.get_by_role("link", name="Réglages").click()
    phone.get_by_label("Importer un fichier de réglages").set_input_files(str(saved))
    phone.get_by_role("button", name="Importer ce fichier").click()
    report = phone.get_by_role("status").filter(has_text="Import terminé")
    expect(report).to_contain_text("Routeur « Maquis Akwa » : ajouté.")
    expect(report).to_contain_text("Routeur « Maquis Akwa », forfait « 1 jour » : ajouté.")
    expect(report).to_contain_text("Compte FeexPay « FeexPay » : à compléter (Jeton API (fp_…)), inactif d'ici là.")
    assert fits_the_screen(phone)
    shots(phone, "imported-on-second-server")

    phone.get_by_role("navigation").get_by_role("link", name="Routeurs").click()
    phone.get_by_role("link", name="Maquis Akwa").click()
    expect(phone.locator("#connection")).to_contain_text("Le mot de passe de l'API n'est pas encore saisi")
    shots(phone, "imported-router")
    with other.app_context():
        imported = db.session.scalar(db.select(Router))
        assert (imported.slug, imported.prefix, imported.name_length) == (router.slug, "MA", 5)
        assert [p.label for p in imported.plans] == ["1 heure", "1 jour"] and imported.api_password == ""
