"""Conditional updates of one row, the way every race in Kiosque is settled; inserts and commits
that give way when a concurrent writer took the same unique value."""

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy import ColumnElement, Insert, Table, Update, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db

T = TypeVar("T")
COMMIT_ATTEMPTS = 5


def update_if(obj, *conditions, where: Mapping[str, object] | None = None, increment: tuple[str, ...] = (),
              **values) -> bool:
    """UPDATE this object's row WHERE `where` and `conditions` hold; True when it matched (this caller won).

    `where` maps columns to what they must hold: a value (=), a tuple (IN) or None (IS NULL);
    `increment` names columns raised by one in SQL. `conditions` and SQL expressions among
    `values` cover anything else. The columns written come back from the same statement
    (RETURNING, so what the database computes is exact) and are set on the object; its other
    attributes keep what was read, and its loaded relationships stay loaded. Staged in the
    caller's transaction.

    A Core statement on the table: the ORM's bulk UPDATE would flush the session first and read
    the whole row back. Without `conditions` or SQL expressions it is built once per shape, with
    bound parameters, and reused: building it at each call cost as much again as running it.
    """
    where = where or {}
    plain = {key: value for key, value in values.items() if not isinstance(value, ColumnElement)}
    computed = {key: value for key, value in values.items() if key not in plain}
    shape = (type(obj).__table__, tuple((key, _test(value)) for key, value in where.items()), tuple(plain), increment)
    statement = _update(*shape, conditions, computed) if conditions or computed else _reused_update(*shape)
    params = {"where_id": obj.id, **{f"set_{key}": value for key, value in plain.items()},
              **{f"where_{key}": list(value) if isinstance(value, tuple) else value
                 for key, value in where.items() if value is not None}}
    row = db.session.execute(statement, params).first()
    if row is None:
        return False
    for key, value in zip((*plain, *increment, *computed), row):
        set_committed_value(obj, key, value)
    return True


def _test(value) -> str:
    return "is null" if value is None else "in" if isinstance(value, tuple) else "="


def _update(table: Table, where: tuple[tuple[str, str], ...], written: tuple[str, ...], increment: tuple[str, ...],
            conditions: tuple = (), computed: Mapping | None = None) -> Update:
    """UPDATE `table` … WHERE id and `where`'s tests hold … RETURNING the columns written, in this order:
    `written` (bound parameters), `increment`, `computed`."""
    c = table.c

    def test(key: str, op: str):
        if op == "is null":
            return c[key].is_(None)
        if op == "in":
            return c[key].in_(bindparam(f"where_{key}", type_=c[key].type, expanding=True))
        return c[key] == bindparam(f"where_{key}", type_=c[key].type)

    computed = computed or {}
    values = {key: bindparam(f"set_{key}", type_=c[key].type) for key in written}
    values |= {key: c[key] + 1 for key in increment} | dict(computed)
    return (table.update().where(c.id == bindparam("where_id"), *(test(key, op) for key, op in where), *conditions)
            .values(values).returning(*(c[key] for key in (*written, *increment, *computed))))


_reused_update = functools.cache(_update)


# Both databases Kiosque runs on write INSERT … ON CONFLICT DO NOTHING the same way.
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def insert_row(model: type, **values) -> None:
    """INSERT one row of `model`'s table, reading nothing back; staged in the caller's transaction.

    For rows written and not read again in the same transaction (timeline lines, callbacks as
    they arrived): the session's flush of a new object cost about as much again as the
    statement. The columns' defaults fill the others.
    """
    insert_rows(model, [values])


def insert_rows(model: type, rows: Sequence[Mapping[str, object]]) -> None:
    """INSERT `rows`, each giving the same columns, as `insert_row` does one.

    Several rows go to the driver in one call (executemany, which psycopg sends as one pipeline:
    one round trip) of the statement built for one row, which SQLAlchemy keeps compiled; a
    statement built with several VALUES it would compile again at every call.
    """
    statement = _reused_insert(model.__table__, tuple(rows[0]))
    db.session.execute(statement, rows[0] if len(rows) == 1 else list(rows))


def insert_unless_taken(model: type[T], unique: tuple[str, ...], **values) -> T | None:
    """INSERT a row, unless one already holds its values of the `unique` columns; the new object or None.

    One statement (ON CONFLICT DO NOTHING … RETURNING) where a lookup and an insert took two, and
    a concurrent writer of the same values makes this caller draw again rather than fail at
    commit. `unique` names a unique constraint's columns; any other constraint still raises.
    Staged in the caller's transaction.

    Built once per shape, like `insert_row`. The object is made from the values given and the
    columns the insert computed (its id, the columns' defaults) and joins the session as if it had
    been loaded, so later changes to it are flushed as usual: the ORM's INSERT … RETURNING of the
    entity cost as much again as the statement.
    """
    table = model.__table__
    computed = tuple(column.key for column in table.c if column.key not in values)
    statement = _reused_insert(table, tuple(values), unique, computed, db.session.get_bind().dialect.name)
    row = db.session.execute(statement, values).first()
    if row is None:
        return None
    obj = model(**values, **dict(zip(computed, row)))
    make_transient_to_detached(obj)
    db.session.add(obj)
    return obj


@functools.cache
def _reused_insert(table: Table, given: tuple[str, ...], unique: tuple[str, ...] = (), returned: tuple[str, ...] = (),
                   dialect: str = "") -> Insert:
    """INSERT of the `given` columns, bound parameters named after them; with `unique`, ON CONFLICT
    (`unique`) DO NOTHING in the `dialect`'s words, RETURNING the `returned` columns."""
    values = {key: bindparam(key, type_=table.c[key].type) for key in given}
    if not unique:
        return table.insert().values(values)
    return (_INSERTS[dialect](table).values(values).on_conflict_do_nothing(index_elements=unique)
            .returning(*(table.c[key] for key in returned)))


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
