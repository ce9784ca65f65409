import time

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from portal import create_app, extensions
from portal.config import ConfigurationError
from portal.extensions import db

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


def test_a_pooled_connection_that_died_while_idle_is_replaced(app, monkeypatch):
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE", 0.0)  # every idle connection is checked
    with app.app_context():
        pooled = db.engine.raw_connection()
        dbapi_connection = pooled.dbapi_connection
        pooled.close()  # back in the pool
        dbapi_connection.close()  # the database dropped it meanwhile
        assert db.session.execute(select(1)).scalar() == 1  # on a new connection, without an error
        db.session.remove()


def test_a_connection_used_a_moment_ago_is_not_checked():
    class Record:
        info = {"kiosque_idle_since": time.monotonic()}

    class Unusable:
        def cursor(self):
            raise AssertionError("checked although used a moment ago")

    extensions._ping_after_idle(Unusable(), Record(), None)
