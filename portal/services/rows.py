"""Conditional updates of one row, the way every race in Kiosque is settled; commits that retry
when a concurrent writer took the same unique value."""

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db

T = TypeVar("T")
COMMIT_ATTEMPTS = 5


def update_if(obj, *conditions, **values) -> bool:
    """UPDATE this object's row WHERE `conditions`; True when it matched (this caller won).

    The row comes back from the same statement (RETURNING) and is set on the object column by
    column, so its loaded relationships stay loaded. Staged in the caller's transaction.
    """
    model = type(obj)
    columns = model.__table__.columns
    row = db.session.execute(
        update(model).where(model.id == obj.id, *conditions).values(**values).returning(*columns)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return False
    for column, value in zip(columns, row):
        set_committed_value(obj, column.key, value)
    return True


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
