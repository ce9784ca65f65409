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
