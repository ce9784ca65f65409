"""What one database statement and its commit cost the thread that makes them, in CPU, written each
way Kiosque could write it: through the session as the paid path does, built once (bound
parameters, or a lambda statement), as text, on a connection held open, and in psycopg alone
(PostgreSQL only).

The paid path's CPU is mostly such transactions (docs/benchmarks.md, "What limits the figure"):
this says which way of writing them would be cheaper, and by how much. The ways are interleaved,
round by round, so that a busy machine slows them alike; each figure is the range over the rounds.

    .venv/bin/python bench/statement_cost.py [--database URL] [--runs 1000] [--rounds 3]
"""

import argparse
from collections.abc import Callable

from sqlalchemy import bindparam, lambda_stmt, make_url, or_, select, text
from sqlalchemy.orm import joinedload

from staging import compare_cpu, staged_kiosque

from portal.extensions import db
from portal.models import EventKind, Order, OrderEvent, OrderStatus, utcnow
from portal.services.rows import update_if
from portal.services.webhook_intake import NAMED_ORDERS


def _an_order(stage) -> Order:
    router = stage.router
    order = Order(intent="bench-statement-cost", owner_id=router.owner_id, router_id=router.id,
                  account_id=router.accounts[0].id, provider=router.accounts[0].provider, plan_label="1 heure",
                  profile="1h", amount=100, currency="XOF", status=OrderStatus.PENDING)
    db.session.add(order)
    db.session.commit()
    return order


def _ways(order: Order, database_url: str) -> dict[str, Callable[[], object]]:
    session, events, orders = db.session, OrderEvent.__table__, Order.__table__
    line = {"order_id": order.id, "kind": EventKind.NOTIFIED, "facts": {"status": "approved"}, "detail": ""}
    built_once = (orders.update().where(orders.c.id == bindparam("oid"), orders.c.status == bindparam("from_status"))
                  .values(notified_at=bindparam("at")).returning(orders.c.notified_at))
    as_text = text('UPDATE "order" SET notified_at = :at WHERE id = :oid AND status = :from_status RETURNING notified_at')
    held = db.engine.connect()

    def params() -> dict:
        return {"oid": order.id, "from_status": order.status.value, "at": utcnow()}

    def commit_after(stage: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            stage()
            session.commit()
        return run

    def on_held_connection() -> None:
        held.execute(as_text, params()).first()
        held.commit()

    account_id, code, ref = order.account_id, order.code, "no-such-reference"

    # The order a provider's callback names, with its router (webhook_intake); the lambda statement
    # is built once, its closure's values becoming bound parameters.
    ways = {
        "the callback's order lookup, with its router, built at the call": commit_after(lambda: session.scalars(
            select(Order).where(Order.account_id == account_id, or_(Order.code == code, Order.provider_ref == ref))
            .options(joinedload(Order.router))).all()),
        "the same lookup as a lambda statement": commit_after(lambda: session.scalars(lambda_stmt(
            lambda: select(Order).where(Order.account_id == account_id, or_(Order.code == code, Order.provider_ref == ref))
            .options(joinedload(Order.router)))).all()),
        "the same lookup built once, as webhook_intake has it": commit_after(lambda: session.scalars(
            NAMED_ORDERS, {"account_id": account_id, "code": code, "provider_ref": ref}).all()),
        "a timeline line added through the session": commit_after(lambda: session.add(OrderEvent(**line))),
        "the same line as a Core INSERT built at the call": commit_after(
            lambda: session.execute(events.insert().values(at=utcnow(), **line))),
        "update_if with an expression condition: a conditional UPDATE … RETURNING built at the call": commit_after(
            lambda: update_if(order, Order.status == order.status, notified_at=utcnow())),
        "update_if with where=: the same, built once and reused": commit_after(
            lambda: update_if(order, where={"status": order.status}, notified_at=utcnow())),
        "the same UPDATE built once, through the session": commit_after(
            lambda: session.execute(built_once, params()).first()),
        "the same as text, through the session": commit_after(lambda: session.execute(as_text, params()).first()),
        "the same as text, on a connection held open": on_held_connection,
    }
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        import psycopg

        raw = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
        sql = 'UPDATE "order" SET notified_at = %s WHERE id = %s AND status = %s RETURNING notified_at'

        def in_psycopg() -> None:
            raw.execute(sql, (utcnow(), order.id, order.status.value)).fetchone()
            raw.commit()

        ways["the same in psycopg alone"] = in_psycopg
    return ways


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--runs", type=int, default=1000, help="transactions per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with staged_kiosque(args.database) as (app, _base, stage):
        ways = _ways(_an_order(stage), str(db.engine.url.render_as_string(hide_password=False)))
        print(f"{db.engine.dialect.name}\n")
        compare_cpu(ways, args.runs, args.rounds, "one statement and its commit")


if __name__ == "__main__":
    main()
