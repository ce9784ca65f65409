"""An order's life: its states, its timeline, and the conditional updates that move it.

    created ──checkout──▶ pending ──paid──▶ paid ──ticket on the router──▶ provisioned
       │ │                                  (claimed by one worker or request at a time)
       │ └──answer lost (a push)──▶ unknown ──a callback names its payment──▶ pending / paid / failed
       └──cannot start──▶ failed
    pending, unknown ──declined, cancelled, too late──▶ failed / expired
    failed, expired ──a payment confirmed late──▶ paid

Every move is an UPDATE conditional on the state it leaves, so duplicates and races apply it
once. A paid order's provisioning is claimed: the claim writes a fresh token and a deadline, and
every later write of that provisioning is conditional on the token, so a claim that lapsed (its
holder slow or dead) is taken over by someone else and can no longer act. None of these
functions commits: the service that calls them owns the transaction.
"""

import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select

from portal.extensions import db
from portal.models import EventKind, Order, OrderEvent, OrderStatus, utcnow
from portal.services.rows import insert_rows, update_if

log = logging.getLogger(__name__)

# Waiting for the buyer's payment (an unknown order, whose checkout answer was lost, may get it too).
OPEN = (OrderStatus.CREATED, OrderStatus.PENDING, OrderStatus.UNKNOWN)
# Statuses from which a confirmed payment moves an order to "paid": money received always
# becomes a ticket, even after the order was given up as failed or expired.
PAYABLE = (*OPEN, OrderStatus.FAILED, OrderStatus.EXPIRED)


@dataclass(frozen=True)
class Line:
    """A line of an order's timeline, as `record` takes it."""

    kind: EventKind
    detail: str = ""
    facts: dict = field(default_factory=dict)


def record(order: Order, kind: EventKind, detail: str = "", **facts) -> None:
    """Add a line to the order's timeline, with the caller's transaction.

    `facts` are what the line is written from (see formatting.event_line), `detail` the technical
    text behind it, as it came.
    """
    record_lines(order, [Line(kind, detail, facts)])


def record_lines(order: Order, lines: list[Line]) -> None:
    """Add several lines to the order's timeline, in this order, in one round trip."""
    insert_rows(OrderEvent, [{"order_id": order.id, "kind": line.kind, "facts": line.facts,
                              "detail": line.detail[:500]} for line in lines])
    for line in lines:
        # The id, never the code (it opens the order page and its ticket), nor the detail, which
        # may hold a reference equal to the code.
        log.info("order %s: %s", order.id, line.kind.value, extra={"order_id": order.id, "event": line.kind.value})


def transition(order: Order, to: OrderStatus, from_: tuple[OrderStatus, ...], **values) -> bool:
    """Move the order only if it is still in one of `from_`; True when this call moved it.

    The order object is brought up to date from the same statement when it moved.
    """
    return update_if(order, where={"status": from_}, status=to, **values)


def awaiting_late_payment(order: Order) -> bool:
    """A failed order that may still be paid: the provider has a payment for it, younger than ORDER_TTL.

    Buyers retry and providers notify after each change (a first "refused" may be followed by
    "accepted"), so such an order is still asked about, more slowly, until it expires.
    """
    young = order.created_at > utcnow() - timedelta(seconds=current_app.config["ORDER_TTL"])
    return order.status == OrderStatus.FAILED and order.provider_ref is not None and young


def adopt_reference(order: Order, provider_ref: str) -> bool:
    """Give an order without a provider reference (its checkout answer was lost) the one a callback names.

    Only a callback can bring it (no provider can be searched by our code); the status check
    that follows must then confirm the payment is this order's. False if the order has one.
    """
    return update_if(order, where={"provider_ref": None}, provider_ref=provider_ref)


def drop_reference(order: Order, provider_ref: str) -> bool:
    """Forget an adopted reference the provider did not confirm as this order's payment."""
    return update_if(order, where={"provider_ref": provider_ref}, provider_ref=None)


def find_order(code: str) -> Order | None:
    return db.session.scalar(select(Order).where(Order.code == code.strip().upper()))


@dataclass(frozen=True)
class Claim:
    """The right to make one paid order's ticket, until someone else takes it over."""

    order: Order
    token: str


def _claim_values() -> dict:
    until = utcnow() + timedelta(seconds=current_app.config["ORDER_CLAIM_SECONDS"])
    return {"claim_token": secrets.token_hex(16), "claimed_until": until}


def claim_payment(order: Order, **values) -> Claim | None:
    """Mark the order paid and claim its provisioning in one update; None if it was not payable."""
    claim = _claim_values()
    if not transition(order, OrderStatus.PAID, PAYABLE, increment=("attempts",), **claim, **values):
        return None
    return Claim(order, claim["claim_token"])


def claim_provisioning(order: Order) -> Claim | None:
    """Claim a paid order nobody holds (or whose holder's claim lapsed); None if it cannot be."""
    claim = _claim_values()
    free = or_(Order.claimed_until.is_(None), Order.claimed_until < utcnow())
    if not update_if(order, free, where={"status": OrderStatus.PAID}, increment=("attempts",), **claim):
        return None
    return Claim(order, claim["claim_token"])


def renew(claim: Claim, **values) -> bool:
    """Check the claim still holds and push its deadline back; False if it was taken over."""
    until = utcnow() + timedelta(seconds=current_app.config["ORDER_CLAIM_SECONDS"])
    return update_if(claim.order, where=_held(claim), claimed_until=until, **values)


def release(claim: Claim, **values) -> bool:
    """Give the claim up (the order stays paid, for a later attempt); False if it was taken over."""
    return update_if(claim.order, where=_held(claim), claim_token=None, claimed_until=None, **values)


def finish(claim: Claim, **values) -> bool:
    """The ticket is on the router: provisioned, claim released; False if it was taken over."""
    return update_if(claim.order, where=_held(claim), status=OrderStatus.PROVISIONED, claim_token=None,
                   claimed_until=None, **values)


def _held(claim: Claim) -> dict:
    return {"status": OrderStatus.PAID, "claim_token": claim.token}


def expire(order: Order) -> bool:
    """Give up waiting for the payment; True when this call expired the order."""
    moved = transition(order, OrderStatus.EXPIRED, OPEN)
    if moved:
        record(order, EventKind.EXPIRED)
    return moved
