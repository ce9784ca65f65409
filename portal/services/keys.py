"""Re-encrypting stored secrets under the current key (PORTAL_ENCRYPTION_KEY's first key)."""

from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from portal.crypto import EncryptedText
from portal.extensions import db


def rotate() -> int:
    """Rewrite every encrypted value with the first key; returns how many values were rewritten.

    Reading works with any listed key and writing always uses the first, so after this the old
    keys can be removed from the list.
    """
    rewritten = 0
    for mapper in db.Model.registry.mappers:
        columns = [c.key for c in mapper.columns if isinstance(c.type, EncryptedText)]
        if not columns:
            continue
        for row in db.session.scalars(select(mapper.class_)).yield_per(500):
            for column in columns:
                if getattr(row, column) is not None:
                    flag_modified(row, column)
                    rewritten += 1
    db.session.commit()
    return rewritten
