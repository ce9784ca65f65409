"""Conditional updates of one row, the way every race in Kiosque is settled; inserts and commits
that give way when a concurrent writer took the same unique value."""

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db

T = TypeVar("T")
COMMIT_ATTEMPTS = 5


def update_if(obj, *conditions, **values) -> bool:
    """UPDATE this object's row WHERE `conditions`; True when it matched (this caller won).

    The columns written come back from the same statement (RETURNING, so values the database
    computes, such as `attempts + 1`, are exact) and are set on the object; its other attributes
    keep what was read, and its loaded relationships stay loaded. A Core statement on the table:
    the ORM's bulk UPDATE would flush the session first and read the whole row back, twice the
    work on the paid path. Staged in the caller's transaction.
    """
    table = type(obj).__table__
    written = [table.c[key] for key in values]
    row = db.session.execute(
        table.update().where(table.c.id == obj.id, *conditions).values(**values).returning(*written)
    ).first()
    if row is None:
        return False
    for column, value in zip(written, row):
        set_committed_value(obj, column.key, value)
    return True


# Both databases Kiosque runs on write INSERT … ON CONFLICT DO NOTHING the same way.
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def insert_unless_taken(model: type[T], unique: tuple[str, ...], **values) -> T | None:
    """INSERT a row, unless one already holds its values of the `unique` columns; the new object or None.

    One statement (ON CONFLICT DO NOTHING … RETURNING) where a lookup and an insert took two, and
    a concurrent writer of the same values makes this caller draw again rather than fail at
    commit. `unique` names a unique constraint's columns; any other constraint still raises.
    Staged in the caller's transaction.
    """
    insert = _INSERTS[db.session.get_bind().dialect.name]
    return db.session.scalar(
        insert(model).values(**values).on_conflict_do_nothing(index_elements=unique).returning(model))


def commit_retrying(stage: Callable[[], T], attempts: int = COMMIT_ATTEMPTS) -> T:
    """Run `stage` (which stages writes) and commit; on a unique constraint violation roll back and
    run it again, so it chooses again in view of what the other writer committed.

    `attempts` must be at least 1; the last attempt's IntegrityError is raised. Whatever else
    `stage` raises ends it at once.
    """
    for attempt in range(attempts):
        result = stage()
        try:
            db.session.commit()
            return result
        except IntegrityError:
            db.session.rollback()
            if attempt == attempts - 1:
                raise
