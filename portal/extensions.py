"""Flask extensions, created unbound; the factory binds each one with init_app."""

import sqlite3
import time
from datetime import datetime

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool
from sqlalchemy.orm import DeclarativeBase, registry

from portal.columns import UTCDateTime

# Named constraints, so migrations can alter them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    # Moments are UTC, kept with their time zone where the database can (PostgreSQL).
    registry = registry(type_annotation_map={datetime: UTCDateTime},
                       metadata=MetaData(naming_convention=NAMING_CONVENTION))


# Objects keep their values after a commit: the services commit at every step of the paid path
# and would otherwise reload each object from the database. What must see another transaction's
# writes reads it again (populate_existing), and conditional updates hand back the row they wrote.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


@event.listens_for(Engine, "connect")
def _sqlite_concurrency(connection, _record) -> None:
    """SQLite serves several threads and processes (web, worker): readers never block the writer."""
    if isinstance(connection, sqlite3.Connection):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()


# A pooled connection idle this long is checked before use: the database may have restarted or
# dropped it meanwhile. One busy moments ago is used as it is (a ping on every checkout cost each
# paid webhook six round trips out of about forty); if it died all the same, that one request
# fails and SQLAlchemy replaces the pool's connections.
PING_AFTER_IDLE = 10.0  # seconds


@event.listens_for(Pool, "checkin")
def _note_idle_since(_dbapi_connection, record) -> None:
    if record is not None:
        record.info["kiosque_idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_after_idle(dbapi_connection, record, _proxy) -> None:
    idle_since = record.info.get("kiosque_idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
        return  # new, or used a moment ago
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception as exc:  # any driver's error: the pool opens a new connection instead
        raise DisconnectionError("stale pooled connection") from exc


migrate = Migrate()
mail = Mail()
babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address)
htmx = Htmx()
