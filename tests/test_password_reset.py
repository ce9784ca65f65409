"""A forgotten password: a signed, single-use link by email, through a real SMTP server."""

import logging
import re
import time

import pytest
from itsdangerous import TimestampSigner

from portal.extensions import db
from portal.models import Owner
from portal.services import owners
from tests.conftest import NOT_KIOSQUE, SENDER, Browser, mail_settings, page_text, text_of


@pytest.fixture
def app_config(app_config, smtp) -> dict:
    return {**app_config, **mail_settings(smtp)}


def ask_reset(client, email: str):
    browser = Browser(client)
    # Buffered: the email leaves once the response is sent, as it does under gunicorn.
    return browser.post("/owner/password/forgot", {"email": email}, buffered=True)


def reset_link(smtp) -> str:
    deadline = time.monotonic() + 5
    while not smtp.envelopes and time.monotonic() < deadline:
        time.sleep(0.02)
    [message] = smtp.messages()
    return re.search(r"https?://\S+/owner/password/reset/\S+", text_of(message)).group(0)


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def test_the_login_page_leads_to_the_reset_form(app):
    page = page_text(app.test_client().get("/owner/login"))
    assert '<a href="/owner/password/forgot">Mot de passe oublié ?</a>' in page
    form = page_text(app.test_client().get("/owner/password/forgot"))
    assert "Recevoir le lien" in form and 'name="email"' in form


def test_a_reset_link_by_email_sets_a_new_password_once_and_ends_every_session(app, owner, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    elsewhere = Browser(app.test_client())  # the owner is signed in on another device
    assert elsewhere.login("owner@example.com", "owner-password").status_code == 302

    asked = ask_reset(app.test_client(), "Owner@Example.com ")
    assert asked.status_code == 200
    assert "Si un compte Kiosque a l'adresse Owner@Example.com" in page_text(asked)
    link = reset_link(smtp)
    [envelope], [message] = smtp.envelopes, smtp.messages()
    assert envelope.rcpt_tos == ["owner@example.com"] and envelope.mail_from == SENDER
    assert message["Subject"] == "Kiosque : choisir un nouveau mot de passe"
    assert message["Content-Language"] == "fr"
    assert "dans les 60 minutes" in text_of(message) and "owner@example.com" in text_of(message)

    browser = Browser(app.test_client())
    form = browser.get(path_of(link))
    assert form.status_code == 200 and "Pour le compte owner@example.com" in page_text(form)
    assert form.headers["Cache-Control"] == "no-store" and form.headers["Referrer-Policy"] == "no-referrer"
    mismatch = browser.post(path_of(link), {"password": "brand-new-pw", "confirm": "brand-new-px"})
    assert mismatch.status_code == 422 and "Les deux mots de passe diffèrent." in page_text(mismatch)
    short = browser.post(path_of(link), {"password": "short", "confirm": "short"})
    assert short.status_code == 422 and "Entre 8 et 200 caractères." in page_text(short)

    done = browser.post(path_of(link), {"password": "brand-new-pw", "confirm": "brand-new-pw"})
    assert done.status_code == 302 and done.location == "/owner/login"
    assert "Votre mot de passe a été changé. Connectez-vous avec le nouveau." in page_text(browser.get("/owner/login"))
    assert elsewhere.get("/owner/routers/").status_code == 302  # signed out there too
    assert Browser(app.test_client()).login("owner@example.com", "owner-password").status_code == 401
    assert Browser(app.test_client()).login("owner@example.com", "brand-new-pw").status_code == 302

    # Used once, the link is dead.
    again = browser.get(path_of(link))
    assert again.status_code == 400 and "Ce lien ne permet plus de changer le mot de passe" in page_text(again)
    assert browser.post(path_of(link), {"password": "third-password", "confirm": "third-password"}).status_code == 400
    db.session.refresh(owner)
    assert owner.check_password("brand-new-pw")

    token = link.rsplit("/", 1)[1]
    assert not [r for r in caplog.records if token in r.getMessage() and not r.name.startswith(NOT_KIOSQUE)]


def test_unknown_addresses_get_the_same_answer_and_no_email(app, owner, smtp):
    known = page_text(ask_reset(app.test_client(), "owner@example.com"))
    reset_link(smtp)
    unknown = page_text(ask_reset(app.test_client(), "nobody@example.com"))
    time.sleep(0.3)
    assert len(smtp.envelopes) == 1
    assert unknown.split("<main>")[1] == known.split("<main>")[1].replace("owner@example.com", "nobody@example.com")


def test_a_link_dies_after_an_hour_and_when_the_password_changes_otherwise(app, owner, smtp, monkeypatch):
    ask_reset(app.test_client(), "owner@example.com")
    link = reset_link(smtp)
    owners.set_password(db.session.get(Owner, owner.id), "changed-by-operator")
    assert app.test_client().get(path_of(link)).status_code == 400

    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 3601)
    with app.test_request_context():
        old = owners.reset_url(db.session.get(Owner, owner.id))
    monkeypatch.undo()
    assert app.test_client().get(path_of(old)).status_code == 400
    with app.test_request_context():
        fresh = owners.reset_url(db.session.get(Owner, owner.id))
    assert app.test_client().get(path_of(fresh)).status_code == 200
    forged = path_of(fresh)[:-3] + ("abc" if not fresh.endswith("abc") else "abd")
    assert app.test_client().get(forged).status_code == 400


@pytest.fixture
def app_in_english(app, owner):
    owner.locale = "en"
    db.session.commit()


def test_the_email_is_in_the_owners_language(app, owner, smtp, app_in_english):
    ask_reset(app.test_client(), "owner@example.com")
    reset_link(smtp)
    [message] = smtp.messages()
    assert message["Content-Language"] == "en" and message["Subject"] == "Kiosque: choose a new password"
