"""Making tickets: from a paid order (or a cash sale) to a hotspot user on the router, exactly once.

For an order, under its claim (see order_state), in three transactions:

1. the claim and the ticket's credentials are committed before the router hears the name;
2. the user is added on the router; the ticket is recorded as created while the claim is
   renewed, which proves nobody took the order over;
3. the client's device is logged in from the server side, and the order becomes provisioned
   under the same claim; the worker emails the owner at its next sweep (notifications).

A retry (a new claim after a router error, a crash, or a lapsed claim) reuses the saved
credentials and asks the router first: a user with that name and our comment is ours (an
earlier attempt got there before it could record it), anyone else's means a collision and a
new name is drawn. A takeover of a ticket already recorded as created checks the router's
active sessions before logging the client in, so the client is never logged in twice.
"""

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import select

from portal import deferred
from portal.extensions import db
from portal.models import EventKind, Order, OrderStatus, Plan, Router, Ticket, TicketStatus, utcnow
from portal.routeros import credentials
from portal.routeros.client import NameCollisions, RouterClient, RouterCommandError, RouterError, router_client
from portal.services import router_health
from portal.services.order_state import Claim, Line, claim_provisioning, finish, record, record_lines, release, renew
from portal.services.routers import failure_facts, router_address
from portal.services.rows import insert_unless_taken, update_if

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_BACKOFF = (5, 15, 30, 60, 120, 300)  # seconds before each new provisioning attempt
DUPLICATE_USER = "already have user with this name"
MAX_NAME_DRAWS = 5  # names tried on the router before giving up on an attempt
MAX_FREE_NAME_DRAWS = 20  # names drawn against Kiosque's own records before giving up


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


# -- paid orders ----------------------------------------------------------------------------------


def provision_order(order: Order) -> None:
    """Claim a paid order nobody is working on and make its ticket; nothing if it is taken or done,
    or while its router is left alone after failing to answer."""
    if not router_health.available(order.router):
        return
    claim = claim_provisioning(order)
    if claim is None:
        db.session.rollback()
        return
    provision_claimed(claim)


def provision_claimed(claim: Claim, *, first: bool = False) -> None:
    """Make the claimed order's ticket, log the client in, mark it provisioned. Commits as it goes.

    `first`: the order was paid by the same update that claimed it, so it has no ticket yet.
    """
    order = claim.order
    ticket = None if first else db.session.scalar(select(Ticket).where(Ticket.order_id == order.id))
    if ticket is None:
        ticket = new_ticket(order.router, Sale.of_order(order), tag=order.code, order_id=order.id,
                            client_ip=order.client_ip, client_mac=order.client_mac)
    router = order.router
    if not router_health.available(router):  # it failed to answer a moment ago: try when it is due
        release(claim, next_attempt_at=router.retry_at)
        db.session.commit()
        return
    db.session.commit()  # 1. the claim (and the payment) with the credentials
    taken_over = ticket.status == TicketStatus.CREATED  # an earlier holder got the user onto the router
    if not taken_over:
        try:
            user_id = _ensure_user(ticket, _client(router))
        except RouterError as exc:
            _note_failure(ticket, exc)
            change = router_health.failed(router) if router_health.counts_against(exc) else None
            delay = RETRY_BACKOFF[min(order.attempts, len(RETRY_BACKOFF)) - 1]
            next_attempt = max(filter(None, (utcnow() + timedelta(seconds=delay), router.retry_at)))
            if release(claim, next_attempt_at=next_attempt, last_error=str(exc)[:300]):
                record(order, EventKind.ROUTER_ERROR, str(exc), attempt=order.attempts, **failure_facts(exc))
            db.session.commit()
            _tell_owner(router, change, failure_facts(exc))
            return
        _mark_created(ticket, user_id)
    change = router_health.answered(router)
    held = renew(claim)  # 2. nobody took the order over while the router was working
    db.session.commit()
    _tell_owner(router, change)
    if not held:
        return
    logged_in = log_client_in(ticket, check_first=taken_over)
    if finish(claim, provisioned_at=utcnow(), last_error=""):  # 3.
        logged = [Line(EventKind.CLIENT_LOGGED_IN)] if logged_in else []
        record_lines(order, [*logged, Line(EventKind.PROVISIONED, facts={"router": router.name})])
    db.session.commit()


def _tell_owner(router: Router, change: router_health.Change | None, failure: dict | None = None) -> None:
    if change is not None:
        deferred.after_response(_send_router_news, router.id, change, failure)


def _send_router_news(router_id: int, change: router_health.Change, failure: dict | None) -> None:
    router = db.session.get(Router, router_id)
    if router is not None:
        router_health.tell_owner(router, change, failure)


def retry_now(order: Order) -> None:
    """The owner asks for a stuck paid order's ticket now rather than at the next scheduled try."""
    if order.status != OrderStatus.PAID:
        return
    order.next_attempt_at = None
    order.router.retry_at = None  # the owner asks now: the router's backoff does not hold them back
    record(order, EventKind.RETRY_ASKED)
    db.session.commit()
    provision_order(order)


# -- cash sales -----------------------------------------------------------------------------------


def sell_by_hand(router: Router, plan: Plan) -> Ticket:
    """A cash sale: a ticket for `plan` made now on the router. Raises RouterError if it could not be."""
    ticket = new_ticket(router, Sale.of_plan(plan), tag="cash" + secrets.token_hex(3), sold_by_hand=True)
    db.session.commit()
    return provision_ticket(ticket)


def provision_ticket(ticket: Ticket) -> Ticket:
    """Make sure a ticket's user is on the router (a cash sale, or the owner's retry). Raises RouterError."""
    if ticket.status == TicketStatus.CREATED:
        return ticket
    router = ticket.router
    try:
        user_id = _ensure_user(ticket, _client(router))
    except RouterError as exc:
        _note_failure(ticket, exc)
        change = router_health.failed(router) if router_health.counts_against(exc) else None
        db.session.commit()
        _tell_owner(router, change, failure_facts(exc))
        raise
    _mark_created(ticket, user_id)
    change = router_health.answered(router)
    db.session.commit()
    _tell_owner(router, change)
    return ticket


# -- the ticket and the router --------------------------------------------------------------------


def new_ticket(router: Router, sale: Sale, *, tag: str, sold_by_hand: bool = False, order_id: int | None = None,
               client_ip: str = "", client_mac: str = "") -> Ticket:
    """Insert the ticket for a sale under a name none of this router's tickets has; the caller
    commits before any router call."""
    return _draw_free_name(router, tag, lambda drawn, comment: insert_unless_taken(
        Ticket, ("router_id", "username"),
        router_id=router.id, order_id=order_id, plan_id=sale.plan_id, plan_label=sale.label, price=sale.price,
        profile=sale.profile, server=router.hotspot_server, limit_uptime=sale.time_limit,
        limit_bytes_total=sale.data_limit_bytes, sold_by_hand=sold_by_hand, client_ip=client_ip,
        client_mac=client_mac, username=drawn.username, password=drawn.password, comment=comment,
    ))


def _rename(ticket: Ticket) -> None:
    """Give a ticket whose name is someone else's on the router a new one, free in our records too."""
    def free(drawn: credentials.Credentials, comment: str) -> bool | None:
        taken = select(Ticket.id).where(Ticket.router_id == ticket.router_id, Ticket.username == drawn.username)
        if db.session.scalar(taken) is not None:
            return None
        ticket.username, ticket.password, ticket.comment = drawn.username, drawn.password, comment
        return True

    _draw_free_name(ticket.router, ticket.comment.rsplit("-", 1)[-1], free)


def _draw_free_name(router: Router, tag: str, take: Callable[[credentials.Credentials, str], T | None]) -> T:
    """Draw names with the router's ticket settings until `take` gets one (not None) and return it.

    `take` receives the drawn credentials and their Mikhmon comment, tagged with `tag`.
    """
    for _ in range(MAX_FREE_NAME_DRAWS):
        drawn = credentials.generate(router.user_mode, router.name_length, router.charset, router.prefix)
        taken = take(drawn, credentials.comment(router.user_mode, tag, utcnow().date()))
        if taken is not None:
            return taken
    raise NameCollisions(f"no free username in {MAX_FREE_NAME_DRAWS} draws: the ticket settings leave too few names",
                         host=router.host, port=router.port)


def _client(router: Router) -> RouterClient:
    return router_client(router_address(router))


def _ensure_user(ticket: Ticket, client: RouterClient) -> str:
    """Add the hotspot user, or find the one an earlier attempt added; returns its router id.

    A first attempt adds straight away: its name was never sent, so the router cannot hold our
    user yet, and "already have user" sends us to look. A retry looks first. A new name drawn
    after a collision is committed before the router hears it.
    """
    look_first = ticket.attempts > 0 or ticket.status == TicketStatus.CREATED
    for _ in range(MAX_NAME_DRAWS):
        if look_first:
            existing = client.find_users(name=ticket.username)
            if existing and existing[0].get("comment") == ticket.comment:
                # Our comment carries the order's tag. Mikhmon rewrites it at the first login, but
                # nobody can log in before we record the ticket.
                return existing[0]["id"]
            if existing:  # someone else's user: draw a name that was never sent
                _rename(ticket)
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
    raise NameCollisions(f"no free username after {MAX_NAME_DRAWS} names tried on the router",
                         host=ticket.router.host, port=ticket.router.port)


def _note_failure(ticket: Ticket, exc: RouterError) -> None:
    update_if(ticket, increment=("attempts",), last_error=str(exc)[:300])
    log.warning("ticket %s not created on router %s: %s", ticket.id, ticket.router_id, exc)


def _mark_created(ticket: Ticket, user_id: str) -> None:
    update_if(ticket, increment=("attempts",), status=TicketStatus.CREATED, router_user_id=user_id,
              created_on_router_at=utcnow(), last_error="")
    # Not the username: for a voucher it is the password.
    log.info("ticket %s created on router %s", ticket.id, ticket.router_id)


def log_client_in(ticket: Ticket, *, check_first: bool = False) -> bool:
    """Log the paying client's device in from the server side; never fatal. The caller commits.

    `check_first`: an earlier holder of the order may have logged the client in already.
    """
    if not ticket.client_ip:
        return False
    try:
        _client(ticket.router).active_login(user=ticket.username, password=ticket.password, ip=ticket.client_ip,
                            mac=ticket.client_mac or None, check_first=check_first)
    except RouterError as exc:
        update_if(ticket, login_result=f"failed: {exc}"[:300])
        return False
    update_if(ticket, login_result="ok")
    return True
