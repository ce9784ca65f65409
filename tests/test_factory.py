import pytest
from cryptography.fernet import Fernet

from portal import create_app
from portal.config import ConfigurationError

from tests.conftest import page_text


def test_production_refuses_to_start_without_secrets(monkeypatch):
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    monkeypatch.delenv("PORTAL_ENCRYPTION_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="PORTAL_SECRET_KEY, PORTAL_ENCRYPTION_KEY"):
        create_app({"ENV": "production"})


def test_production_reads_secrets_from_environment_and_secures_cookies(monkeypatch, tmp_path):
    monkeypatch.setenv("PORTAL_SECRET_KEY", "s3cret")
    monkeypatch.setenv("PORTAL_ENCRYPTION_KEY", Fernet.generate_key().decode())
    app = create_app({"ENV": "production", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/p.db"})
    assert app.config["SECRET_KEY"] == "s3cret"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_development_keeps_generated_secrets_in_instance_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    monkeypatch.delenv("PORTAL_ENCRYPTION_KEY", raising=False)
    monkeypatch.setattr("flask.Flask.auto_find_instance_path", lambda self: str(tmp_path / "instance"))
    first = create_app({"ENV": "development"})
    second = create_app({"ENV": "development"})
    assert first.config["SECRET_KEY"] and first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["ENCRYPTION_KEY"] == second.config["ENCRYPTION_KEY"]
    assert (tmp_path / "instance" / "secrets.json").stat().st_mode & 0o077 == 0


def test_health(app):
    response = app.test_client().get("/health")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_french_by_default_english_on_request(app):
    client = app.test_client()
    assert "Espace propriétaire" in page_text(client.get("/"))
    english = page_text(client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}))
    assert "Owner area" in english


def test_language_switch_is_remembered_and_stays_on_site(app):
    client = app.test_client()
    response = client.get("/lang/en?next=/owner/login")
    assert response.status_code == 302 and response.location == "/owner/login"
    assert "Sign in" in page_text(client.get("/owner/login"))
    assert client.get("/lang/fr?next=//evil.example/").location == "/"
    assert "Connexion" in page_text(client.get("/owner/login"))
