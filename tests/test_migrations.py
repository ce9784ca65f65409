from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade

from portal import create_app
from portal.extensions import db, migrate
from tests.conftest import empty_database


def test_migrations_have_a_single_head(app):
    script = ScriptDirectory.from_config(migrate.get_config())
    assert len(script.get_heads()) == 1


def test_upgrade_on_an_empty_database_matches_the_models(app_config):
    app = create_app(app_config)
    with app.app_context():
        empty_database()
        try:
            upgrade()
            with db.engine.connect() as connection:
                differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
        finally:
            empty_database()
            db.engine.dispose()
    assert differences == []
