"""From a sold plan to a hotspot user on the router, exactly once; then the client's login.

The credentials are chosen and committed before the router is called. A retry therefore asks
the router for that same name first: a user already there with our comment is ours (the earlier
call reached the router before we could record it), anyone else's means a collision and a new
name is drawn.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from flask import current_app
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import Order, Plan, Router, Ticket, TicketStatus, utcnow
from portal.routeros import credentials
from portal.routeros.client import RouterClient, RouterCommandError, RouterError, router_client
from portal.services.routers import router_address

log = logging.getLogger(__name__)

DUPLICATE_USER = "already have user with this name"
MAX_NAME_DRAWS = 5


class NameCollisions(RouterError):
    """Every name drawn for this ticket already belonged to someone else on the router."""


@dataclass(frozen=True)
class Sale:
    """What a ticket is for: a plan's terms, as they stood when it was sold."""

    plan_id: int | None
    label: str
    price: int
    profile: str
    time_limit: str
    data_limit_bytes: int

    @classmethod
    def of_plan(cls, plan: Plan) -> "Sale":
        return cls(plan.id, plan.label, plan.price, plan.profile, plan.time_limit, plan.data_limit_bytes)

    @classmethod
    def of_order(cls, order: Order) -> "Sale":
        return cls(order.plan_id, order.plan_label, order.amount, order.profile, order.time_limit,
                   order.data_limit_bytes)


def new_ticket(router: Router, sale: Sale, *, tag: str, sold_by_hand: bool = False, order: Order | None = None,
               client_ip: str = "", client_mac: str = "") -> Ticket:
    """Choose credentials for a sale and save them, before any router call."""
    drawn, comment = _draw_credentials(router, tag)
    ticket = Ticket(
        router=router, order=order, plan_id=sale.plan_id, plan_label=sale.label, price=sale.price,
        profile=sale.profile, server=router.hotspot_server, limit_uptime=sale.time_limit,
        limit_bytes_total=sale.data_limit_bytes, sold_by_hand=sold_by_hand, client_ip=client_ip,
        client_mac=client_mac, username=drawn.username, password=drawn.password, comment=comment,
    )
    db.session.add(ticket)
    db.session.commit()
    return ticket


def _draw_credentials(router: Router, tag: str) -> tuple[credentials.Credentials, str]:
    """Draw a name that none of this router's recorded tickets has, and the Mikhmon comment."""
    while True:
        drawn = credentials.generate(router.user_mode, router.name_length, router.charset, router.prefix)
        taken = select(Ticket.id).where(Ticket.router_id == router.id, Ticket.username == drawn.username)
        if db.session.scalar(taken) is None:
            return drawn, credentials.comment(router.user_mode, tag, datetime.now(timezone.utc).date())


def _client(router: Router) -> RouterClient:
    return router_client(router_address(router))


def provision(ticket: Ticket) -> Ticket:
    """Make sure the ticket's user exists on the router. Safe to call again after any failure."""
    if ticket.status == TicketStatus.CREATED:
        return ticket
    ticket.attempts += 1
    try:
        user_id = _create_on_router(ticket, _client(ticket.router), look_first=ticket.attempts > 1)
    except RouterError as exc:
        ticket.last_error = str(exc)[:300]
        db.session.commit()
        log.warning("ticket %s not created on router %s: %s", ticket.id, ticket.router_id, exc)
        raise
    # Conditional, so a concurrent attempt that got there first is not overwritten.
    db.session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.status == TicketStatus.PENDING)
        .values(status=TicketStatus.CREATED, router_user_id=user_id, created_on_router_at=utcnow(), last_error="")
        .execution_options(synchronize_session=False)  # refreshed below
    )
    db.session.commit()
    db.session.refresh(ticket)
    # Not the username: for a voucher it is the password.
    log.info("ticket %s created on router %s", ticket.id, ticket.router_id)
    return ticket


def _create_on_router(ticket: Ticket, client: RouterClient, *, look_first: bool) -> str:
    """Add the hotspot user, or find the one an earlier attempt added; returns its router id.

    A first attempt adds straight away: its name was never sent, so the router cannot hold our
    user yet, and "already have user" sends us to look. A retry looks first.
    """
    tag = ticket.comment.rsplit("-", 1)[-1]
    for _ in range(MAX_NAME_DRAWS):
        if look_first:
            existing = client.find_users(name=ticket.username)
            if existing and _is_ours(ticket, existing[0]):
                return existing[0]["id"]
            if existing:  # someone else's user: draw a name that was never sent
                drawn, ticket.comment = _draw_credentials(ticket.router, tag)
                ticket.username, ticket.password = drawn.username, drawn.password
                db.session.commit()
        try:
            return client.add_user(
                name=ticket.username, password=ticket.password, profile=ticket.profile, server=ticket.server,
                limit_uptime=ticket.limit_uptime or "0", limit_bytes_total=ticket.limit_bytes_total,
                comment=ticket.comment,
            )
        except RouterCommandError as exc:
            if DUPLICATE_USER not in exc.router_message:
                raise
            look_first = True  # added meanwhile by a concurrent attempt, or the name is someone else's
    raise NameCollisions(f"no free username after {MAX_NAME_DRAWS} draws", host=ticket.router.host,
                         port=ticket.router.port)


def _is_ours(ticket: Ticket, row: dict) -> bool:
    # The comment carries our tag. Mikhmon rewrites it at the first login, but nobody can log in
    # before we record the ticket, and a vc password equals the name, so it proves nothing.
    return row.get("comment") == ticket.comment


def log_client_in(ticket: Ticket) -> bool:
    """Log the paying client's device in from the server side; never fatal.

    The result is set on the ticket, committed with the caller's next commit.
    """
    if not ticket.client_ip:
        return False
    try:
        _client(ticket.router).active_login(
            user=ticket.username, password=ticket.password, ip=ticket.client_ip, mac=ticket.client_mac or None
        )
    except RouterError as exc:
        ticket.login_result = f"failed: {exc}"[:300]
        return False
    ticket.login_result = "ok"
    return True


def sell_by_hand(router: Router, plan: Plan) -> Ticket:
    """A cash sale: a ticket for `plan` made now on the router. Raises RouterError if it could not be."""
    ticket = new_ticket(router, Sale.of_plan(plan), tag="cash" + secrets.token_hex(3), sold_by_hand=True)
    return provision(ticket)
