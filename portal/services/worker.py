"""The worker's sweeps: whatever the webhooks and the buyers' pages missed is caught up here.

Every sweep is safe to run from several workers on several machines at once: each piece of work
is claimed with a conditional UPDATE first, so only one of them does it.
"""

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError

from portal.extensions import db
from portal.models import EventKind, Order, OrderStatus, Router, utcnow
from portal.payments.base import PaymentError
from portal.routeros.client import RouterClient, RouterError
from portal.services import notifications, provisioning
from portal.services.order_state import OPEN, expire, record
from portal.services.payment_checks import check_payment
from portal.services.routers import router_address

log = logging.getLogger(__name__)

BATCH = 100  # orders handled per kind of work and sweep, so one sweep stays short


@dataclass
class SweepReport:
    provisioned: int = 0
    polled: int = 0
    expired: int = 0
    emails: int = 0
    alerts: list[str] = field(default_factory=list)


def run(interval: float, stop: threading.Event, *, once: bool = False) -> SweepReport | None:
    """Sweep every `interval` seconds until `stop` is set, or just once; returns the last report."""
    while True:
        report = None
        try:
            report = sweep()
        except OperationalError as exc:  # the database went away for a moment: try next sweep
            db.session.rollback()
            log.warning("worker sweep failed: %s", type(exc).__name__)
        finally:
            db.session.remove()  # a fresh session per sweep: nothing stale carried over
        if once or stop.wait(interval):
            return report


def sweep() -> SweepReport:
    """One pass over everything that needs catching up."""
    report = SweepReport()
    report.provisioned = provision_paid_orders()
    report.polled = poll_pending_orders()
    report.expired = expire_old_orders()
    report.emails = notifications.retry_unsent_sale_emails()
    report.alerts = check_routers() + alert_stuck_orders()
    return report


def _act(action: str, **fields) -> None:
    """One structured log line per action."""
    log.info("worker %s %s", action, " ".join(f"{k}={v}" for k, v in fields.items()),
             extra={"action": action, **fields})


def provision_paid_orders() -> int:
    """Make the tickets of paid orders whose retry is due (the claim keeps workers apart)."""
    now = utcnow()
    due = db.session.scalars(
        select(Order).where(
            Order.status == OrderStatus.PAID,
            or_(Order.next_attempt_at.is_(None), Order.next_attempt_at <= now),
            or_(Order.claimed_until.is_(None), Order.claimed_until < now),
        ).order_by(Order.paid_at).limit(BATCH)
    ).all()
    done = 0
    for order in due:
        provisioning.provision_order(order)
        _act("provision", order_id=order.id, status=order.status, attempts=order.attempts)
        done += order.status == OrderStatus.PROVISIONED
    return done


def poll_pending_orders() -> int:
    """Ask the providers about pending orders without news lately (lost webhooks)."""
    now = utcnow()
    quiet_since = now - timedelta(seconds=current_app.config["WORKER_POLL_AFTER"])
    candidates = db.session.scalars(
        select(Order.id).where(
            Order.status == OrderStatus.PENDING,
            Order.created_at >= now - timedelta(seconds=current_app.config["ORDER_TTL"]),
            Order.created_at < quiet_since,
            or_(Order.notified_at.is_(None), Order.notified_at < quiet_since),
            or_(Order.last_checked_at.is_(None), Order.last_checked_at < quiet_since),
        ).order_by(Order.last_checked_at.nulls_first()).limit(BATCH)
    ).all()
    polled = 0
    for order_id in candidates:
        # Claim the check: of several workers, the first to move last_checked_at asks.
        claimed = db.session.execute(
            update(Order).where(Order.id == order_id, or_(Order.last_checked_at.is_(None),
                                                          Order.last_checked_at < quiet_since))
            .values(last_checked_at=now).execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if not claimed:
            continue
        order = db.session.get(Order, order_id, populate_existing=True)
        try:
            check_payment(order, "worker poll")
        except PaymentError as exc:
            _act("poll failed", order_id=order.id, error=type(exc).__name__)
            continue
        polled += 1
        _act("poll", order_id=order.id, status=order.status)
    return polled


def expire_old_orders() -> int:
    """Give up on orders nobody paid in time; a later "paid" still revives them."""
    deadline = utcnow() - timedelta(seconds=current_app.config["ORDER_TTL"])
    stale = db.session.scalars(select(Order).where(
        Order.status.in_(OPEN), Order.created_at < deadline,
    ).limit(BATCH)).all()
    expired = 0
    for order in stale:
        if expire(order):
            expired += 1
            _act("expire", order_id=order.id)
        db.session.commit()
    return expired


def alert_stuck_orders() -> list[str]:
    """Tell the owner, once, about an order paid long ago that still has no ticket."""
    now = utcnow()
    since = now - timedelta(seconds=current_app.config["STUCK_ORDER_ALERT_AFTER"])
    stuck = db.session.scalars(select(Order).where(
        Order.status == OrderStatus.PAID, Order.paid_at < since, Order.stuck_alerted_at.is_(None),
    ).limit(BATCH)).all()
    sent = []
    for order in stuck:
        claimed = db.session.execute(
            update(Order).where(Order.id == order.id, Order.stuck_alerted_at.is_(None))
            .values(stuck_alerted_at=now).execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if not claimed:
            continue
        owner = order.router.owner
        with force_locale(owner.locale or "fr"):
            subject = _("Ticket en attente sur %(router)s", router=order.router.name)
            body = _("Un client a payé %(amount)s %(currency)s (commande %(code)s) il y a plus de 10 minutes, "
                     "mais son ticket n'a pas encore pu être créé sur %(router)s : %(error)s. Kiosque "
                     "réessaie tout seul ; vérifiez que le routeur est joignable.",
                     amount=order.amount, currency=order.currency, code=order.code, router=order.router.name,
                     error=order.last_error or "—")
        notifications.send_alert(order.router.notify_email or owner.email, subject, body)
        record(order, EventKind.OWNER_ALERTED, "paid without a ticket for 10 minutes")
        db.session.commit()
        sent.append(f"stuck order {order.id}")
        _act("alert stuck order", order_id=order.id)
    return sent


def check_routers() -> list[str]:
    """Ask each router that sells online who it is; alert once when one goes down and once when back."""
    waiting = select(Order.router_id).where(Order.status == OrderStatus.PAID)
    routers = db.session.scalars(select(Router).where(
        Router.accounts.any(),
        or_(Router.down_since.is_not(None), Router.last_contact_at.is_(None), Router.id.in_(waiting),
            Router.last_contact_at < utcnow() - timedelta(seconds=current_app.config["ROUTER_CHECK_EVERY"])),
    )).all()
    alerts = []
    for router in routers:
        client = RouterClient(router_address(router))
        try:
            client.facts()
            reachable, error = True, ""
        except RouterError as exc:
            reachable, error = False, str(exc)
        finally:
            client.close()
        alert = _record_health(router, reachable)
        _act("router check", router_id=router.id, reachable=reachable)
        if alert:
            _send_router_alert(router, alert, error)
            alerts.append(f"router {router.id} {alert}")
    return alerts


def _record_health(router: Router, reachable: bool) -> str | None:
    """Store what the check found; returns "down" or "up" when this worker must send that alert."""
    now = utcnow()
    if reachable:
        came_back = db.session.execute(
            update(Router).where(Router.id == router.id, Router.down_alerted.is_(True))
            .values(down_since=None, down_alerted=False, last_contact_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not came_back:
            db.session.execute(update(Router).where(Router.id == router.id)
                               .values(down_since=None, last_contact_at=now)
                               .execution_options(synchronize_session=False))
        db.session.commit()
        return "up" if came_back else None
    db.session.execute(update(Router).where(Router.id == router.id, Router.down_since.is_(None))
                       .values(down_since=now).execution_options(synchronize_session=False))
    # Alert once the router has been down across two checks, not on a single lost packet.
    grace = now - timedelta(seconds=current_app.config["ROUTER_DOWN_ALERT_AFTER"])
    went_down = db.session.execute(
        update(Router).where(Router.id == router.id, Router.down_alerted.is_(False), Router.down_since <= grace)
        .values(down_alerted=True).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return "down" if went_down else None


def _send_router_alert(router: Router, alert: str, error: str) -> None:
    owner = router.owner
    with force_locale(owner.locale or "fr"):
        if alert == "down":
            subject = _("Routeur %(router)s injoignable", router=router.name)
            body = _("Kiosque n'arrive plus à joindre le routeur %(router)s (%(error)s). Les paiements "
                     "reçus entre-temps sont gardés : leurs tickets seront créés dès son retour.",
                     router=router.name, error=error)
        else:
            subject = _("Routeur %(router)s de nouveau joignable", router=router.name)
            body = _("Le routeur %(router)s répond de nouveau. Les tickets en attente sont en cours de création.",
                     router=router.name)
    notifications.send_alert(router.notify_email or owner.email, subject, body)
