"""Conditional updates of one row, the way every race in Kiosque is settled."""

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db


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
