import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from portal.models import Owner
from portal.extensions import db
from tests.conftest import Browser, page_text


def test_login_page_and_wrong_password(app, owner):
    browser = Browser(app.test_client())
    response = browser.login("owner@example.com", "wrong-password")
    assert response.status_code == 401
    assert "E-mail ou mot de passe incorrect" in page_text(response)
    assert browser.get("/owner/routers/").status_code == 302


def test_login_then_logout(browser):
    assert browser.get("/owner/routers/").status_code == 200
    assert browser.post("/owner/logout").status_code == 302
    response = browser.get("/owner/routers/")
    assert response.status_code == 302 and "/owner/login" in response.location


def test_owner_pages_require_login(app, owner):
    client = app.test_client()
    for url in ("/owner/", "/owner/routers/", "/owner/routers/new", "/owner/routers/1", "/owner/plans/1/edit"):
        response = client.get(url)
        assert response.status_code == 302 and "/owner/login" in response.location, url


def test_forms_without_csrf_token_are_refused(app, browser):
    response = browser.client.post("/owner/routers/new", data={"name": "x"})
    assert response.status_code == 400
    assert "formulaire a expiré" in page_text(response)
    assert app.test_client().post("/owner/login", data={"email": "owner@example.com",
                                                         "password": "owner-password"}).status_code == 400


def test_password_is_hashed(app, owner):
    stored = db.session.get(Owner, owner.id).password_hash
    assert "owner-password" not in stored and owner.check_password("owner-password")


def test_owner_create_command_reads_password_from_stdin(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["owner", "create", "New@Example.com"], input="long-enough-pw\n")
    assert result.exit_code == 0, result.output
    assert "new@example.com created" in result.output
    again = runner.invoke(args=["owner", "create", "new@example.com"], input="long-enough-pw\n")
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(args=["owner", "create", "other@example.com"], input="short\n")
    assert short.exit_code != 0 and "at least 8" in short.output


def session_cookie(browser) -> str:
    return browser.client.get_cookie("session").value


def with_cookie(app, value: str):
    client = app.test_client()
    client.set_cookie("session", value)
    return client


def test_a_session_cookie_kept_from_before_logout_no_longer_opens_owner_pages(app, browser):
    kept = session_cookie(browser)
    assert with_cookie(app, kept).get("/owner/routers/").status_code == 200
    assert browser.post("/owner/logout").status_code == 302
    for url in ("/owner/", "/owner/routers/", "/owner/orders/", "/owner/accounts/"):
        response = with_cookie(app, kept).get(url)
        assert response.status_code == 302 and "/owner/login" in response.location, url


def test_logout_ends_the_owners_sessions_on_every_device(app, browser):
    phone = Browser(app.test_client())
    assert phone.login("owner@example.com", "owner-password").status_code == 302
    browser.post("/owner/logout")
    assert phone.get("/owner/routers/").status_code == 302
    # Signing in again works, with a new session.
    assert phone.login("owner@example.com", "owner-password").status_code == 302
    assert phone.get("/owner/routers/").status_code == 200


def test_sessions_last_twelve_hours_without_a_visit(app, browser):
    assert app.permanent_session_lifetime.total_seconds() == app.config["REMEMBER_COOKIE_DURATION"] == 12 * 3600
    fresh = Browser(app.test_client())
    response = fresh.login("owner@example.com", "owner-password")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))
    assert timedelta(hours=11, minutes=59) < expires - datetime.now(timezone.utc) <= timedelta(hours=12)
    assert "remember_token" not in " ".join(response.headers.getlist("Set-Cookie"))


def test_a_session_from_before_session_versions_is_signed_out(app, browser):
    """Cookies issued before this release name the owner by id alone."""
    with browser.client.session_transaction() as session:
        session["_user_id"] = str(db.session.scalar(db.select(Owner.id)))
    assert browser.get("/owner/routers/").status_code == 302


def test_owner_set_password_command(app, owner, browser):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["owner", "set-password", " Owner@Example.com"], input="a-new-password\n")
    assert result.exit_code == 0, result.output
    assert "owner@example.com changed; every session of this owner has ended" in result.output
    assert browser.get("/owner/routers/").status_code == 302
    assert Browser(app.test_client()).login("owner@example.com", "owner-password").status_code == 401
    assert Browser(app.test_client()).login("owner@example.com", "a-new-password").status_code == 302

    short = runner.invoke(args=["owner", "set-password", "owner@example.com"], input="short\n")
    assert short.exit_code != 0 and "at least 8" in short.output
    unknown = runner.invoke(args=["owner", "set-password", "nobody@example.com"], input="a-new-password\n")
    assert unknown.exit_code != 0 and "No owner with the email nobody@example.com" in unknown.output
    assert db.session.get(Owner, owner.id).check_password("a-new-password")
