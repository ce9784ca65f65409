"""Flask extensions, created unbound; the factory binds each one with init_app."""

import sqlite3
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
migrate = Migrate()
mail = Mail()
babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address)
htmx = Htmx()
