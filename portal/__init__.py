"""Kiosque: sell MikroTik hotspot tickets paid by Mobile Money."""

from flask import Flask, has_request_context, request, session
from werkzeug.routing import IntegerConverter

from portal import config, deferred, formatting, logging_setup, security, static_files
from portal import extensions as ext
from portal.blueprints import MAX_ID
from portal.columns import render_migration_type
from portal.crypto import cipher_from_config


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, error pages, commands. No I/O."""
    app = Flask(__name__, instance_relative_config=True)
    config.load(app, test_config)
    logging_setup.configure(app)
    register_extensions(app)
    register_blueprints(app)
    formatting.register(app)
    security.register(app)
    static_files.register(app)
    deferred.register(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def select_locale() -> str:
    """The visitor's chosen language, else the browser's, else French (also outside requests)."""
    languages = config.DEFAULTS["LANGUAGES"]
    if not has_request_context():
        return "fr"
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or "fr"


def register_extensions(app: Flask) -> None:
    app.extensions["kiosque.cipher"] = cipher_from_config(app.config["ENCRYPTION_KEY"])
    hub = app.extensions["kiosque.tunnel_hub"] = config.tunnel_hub(app)
    direct = app.extensions["kiosque.router_egress"] = config.router_egress(app, hub)
    app.extensions["kiosque.tunnel_egress"] = config.tunnel_egress(direct, hub)
    ext.db.init_app(app)
    ext.migrate.init_app(app, ext.db, render_item=render_migration_type)
    ext.mail.init_app(app)
    ext.babel.init_app(app, locale_selector=select_locale)
    ext.csrf.init_app(app)
    ext.limiter.init_app(app)
    ext.htmx.init_app(app)
    ext.login_manager.init_app(app)
    ext.login_manager.login_view = "owner.auth.login"
    ext.login_manager.login_message = None

    from portal.models import Owner
    from portal.services.owners import owner_for_session

    @ext.login_manager.user_loader
    def load_owner(session_id: str) -> Owner | None:
        return owner_for_session(session_id)


class IdConverter(IntegerConverter):
    """A database id in a URL: a positive integer that fits the column, else 404 (never a 500)."""

    def __init__(self, url_map):
        super().__init__(url_map, min=1, max=MAX_ID)


def register_blueprints(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter
    from portal.blueprints import owner, public, shop, webhooks

    app.register_blueprint(public.bp)
    app.register_blueprint(shop.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(owner.bp, url_prefix="/owner")


def register_errorhandlers(app: Flask) -> None:
    from portal.blueprints import errors

    errors.register(app)


def register_commands(app: Flask) -> None:
    from portal import cli

    cli.register(app)
