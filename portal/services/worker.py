"""The worker's sweeps: whatever the webhooks and the buyers' pages missed is caught up here.

Every piece of work is claimed with a conditional UPDATE first, so several workers on several
machines never do it twice. The work that talks to routers (polls that may end in a ticket,
tickets to retry, health checks) runs per router in two lanes of threads, so that no owner's
dead router slows another owner's tickets:

- the fast lane serves routers that answered at their last contact;
- the slow lane, with few threads, serves routers never reached yet or failing, and a failing
  router is left alone between tries (router_health): it costs one timeout per while.

Routers with orders waiting go first, health checks last. The owners' sale emails go while the
lanes work, so no owner's email waits on anyone's router. A sweep waits for its router work at
most WORKER_SWEEP_BUDGET seconds: work not started by then is planned again at the next sweep,
work still running finishes in the background, and later sweeps skip that router until it does.
"""

import logging
import threading
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask, current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import OperationalError

from portal import formatting
from portal.extensions import db
from portal.models import CheckSource, EventKind, Order, OrderStatus, PaymentAccount, Router, utcnow
from portal.payments.base import PaymentError
from portal.routeros.client import RouterClient, RouterError
from portal.services import notifications, provisioning, router_health, tunnel
from portal.services.order_state import OPEN, expire, record
from portal.services.payment_checks import check_payment, take_turn
from portal.services.routers import failure_facts, router_address

log = logging.getLogger(__name__)

BATCH = 100  # orders handled per kind of work and sweep, so one sweep stays short


@dataclass
class SweepReport:
    provisioned: int = 0
    polled: int = 0
    expired: int = 0
    emails: int = 0
    alerts: list[str] = field(default_factory=list)


@dataclass
class RouterWork:
    """What one router's task does in a sweep."""

    router_id: int
    polls: list[int] = field(default_factory=list)  # orders to ask the provider about
    retries: list[int] = field(default_factory=list)  # paid orders whose ticket is due
    check: bool = False  # ask the router who it is (health)
    slow: bool = True  # never reached yet, or failing

    @property
    def rank(self) -> tuple:
        return not self.polls, not self.retries


class Lanes:
    """The threads that do router work, kept from sweep to sweep, and the routers they are on."""

    def __init__(self, app: Flask) -> None:
        config = app.config
        self.app = app
        self.fast = ThreadPoolExecutor(config["WORKER_ROUTER_THREADS"], thread_name_prefix="router-fast")
        self.slow = ThreadPoolExecutor(config["WORKER_SLOW_ROUTER_THREADS"], thread_name_prefix="router-slow")
        self.busy: set[int] = set()
        self._lock = threading.Lock()

    def submit(self, work: RouterWork) -> Future | None:
        """Queue a router's work, unless that router's work from an earlier sweep is still running."""
        with self._lock:
            if work.router_id in self.busy:
                return None
            self.busy.add(work.router_id)
        future = (self.slow if work.slow else self.fast).submit(self._serve, work)
        future.add_done_callback(lambda _: self._free(work.router_id))  # done, failed or cancelled
        return future

    def _free(self, router_id: int) -> None:
        with self._lock:
            self.busy.discard(router_id)

    def _serve(self, work: RouterWork) -> SweepReport:
        with self.app.app_context():
            try:
                return serve_router(work)
            finally:
                db.session.remove()

    def close(self, *, wait_for_running: bool) -> None:
        for lane in (self.fast, self.slow):
            lane.shutdown(wait=wait_for_running, cancel_futures=True)


def run(interval: float, stop: threading.Event, *, once: bool = False) -> SweepReport | None:
    """Sweep every `interval` seconds until `stop` is set, or just once; returns the last report."""
    lanes = Lanes(current_app._get_current_object())
    try:
        while True:
            report = None
            try:
                report = sweep(lanes, wait_for_all=once)
            except OperationalError as exc:  # the database went away for a moment: try next sweep
                db.session.rollback()
                log.warning("worker sweep failed: %s", type(exc).__name__)
            finally:
                db.session.remove()  # a fresh session per sweep: nothing stale carried over
            if once or stop.wait(interval):
                return report
    finally:
        lanes.close(wait_for_running=once)


def sweep(lanes: Lanes | None = None, *, wait_for_all: bool = False) -> SweepReport:
    """One pass over everything that needs catching up (with lanes of its own when none are given).

    `wait_for_all`: wait for every router's work instead of WORKER_SWEEP_BUDGET seconds at most,
    as a sweep with lanes of its own always does (no later sweep is left to finish it).
    """
    own = lanes is None
    wait_for_all = wait_for_all or own
    lanes = lanes or Lanes(current_app._get_current_object())
    report = SweepReport()
    try:
        report.expired = expire_old_orders()
        futures = [f for work in plan_router_work() if (f := lanes.submit(work)) is not None]
        report.emails = notifications.send_sale_emails() + notifications.send_daily_summaries()
        budget = None if wait_for_all else current_app.config["WORKER_SWEEP_BUDGET"]
        done, late = wait(futures, timeout=budget)
        for future in late:
            future.cancel()  # not started yet: planned again next sweep; started ones finish on their own
        for future in done:
            served = future.result()
            report.provisioned += served.provisioned
            report.polled += served.polled
            report.alerts += served.alerts
    finally:
        if own:
            lanes.close(wait_for_running=True)
    report.alerts += alert_stuck_orders()
    return report


def _act(action: str, **fields) -> None:
    """One structured log line per action."""
    log.info("worker %s %s", action, " ".join(f"{k}={v}" for k, v in fields.items()),
             extra={"action": action, **fields})


def plan_router_work() -> list[RouterWork]:
    """Each router's work for this sweep, routers with orders first."""
    config = current_app.config
    now = utcnow()
    reachable = or_(Router.retry_at.is_(None), Router.retry_at <= now)
    work: dict[int, RouterWork] = defaultdict(lambda: RouterWork(0))

    def quiet_for(seconds: float):
        """No news of the order for `seconds`: not made nor checked since (a callback's check included)."""
        since = now - timedelta(seconds=seconds)
        return and_(Order.created_at < since, or_(Order.last_checked_at.is_(None), Order.last_checked_at < since))

    # Orders waiting for their payment, and failed ones that may still be paid late (more slowly),
    # until ORDER_TTL; only those with a payment at the provider can be asked about.
    polls = db.session.execute(
        select(Order.id, Order.router_id).where(
            Order.provider_ref.is_not(None),
            Order.created_at >= now - timedelta(seconds=config["ORDER_TTL"]),
            or_(and_(Order.status.in_((OrderStatus.PENDING, OrderStatus.UNKNOWN)),
                     quiet_for(config["WORKER_POLL_AFTER"])),
                and_(Order.status == OrderStatus.FAILED, quiet_for(config["FAILED_ORDER_POLL_AFTER"]))),
        ).order_by(Order.last_checked_at.nulls_first()).limit(BATCH)
    ).all()
    for order_id, router_id in polls:
        work[router_id].polls.append(order_id)
    retries = db.session.execute(
        select(Order.id, Order.router_id).join(Order.router).where(
            Order.status == OrderStatus.PAID, reachable,
            or_(Order.next_attempt_at.is_(None), Order.next_attempt_at <= now),
            or_(Order.claimed_until.is_(None), Order.claimed_until < now),
        ).order_by(Order.paid_at).limit(BATCH)
    ).all()
    for order_id, router_id in retries:
        work[router_id].retries.append(order_id)
    due_check = now - timedelta(seconds=config["ROUTER_CHECK_EVERY"])
    for router_id in db.session.scalars(select(Router.id).where(
        Router.accounts.any(PaymentAccount.active), reachable,
        or_(Router.down_since.is_not(None), Router.last_contact_at.is_(None), Router.last_contact_at < due_check),
    )):
        work[router_id].check = True
    if work:
        healthy = set(db.session.scalars(select(Router.id).where(
            Router.id.in_(list(work)), Router.last_contact_at.is_not(None), Router.failures == 0)))
        for router_id, item in work.items():
            item.router_id, item.slow = router_id, router_id not in healthy
    return sorted(work.values(), key=lambda item: item.rank)


def serve_router(work: RouterWork) -> SweepReport:
    """One router's work in a sweep: polls, due tickets, and its health check.

    A failing router is asked first; when it answers again, its paid orders go at once instead
    of waiting out their backoff.
    """
    report = SweepReport()
    router = db.session.get(Router, work.router_id)
    if router is None:
        return report
    if work.slow and work.check and router_health.available(router):
        _check(router, report)
        work.check = False
        if router.failures == 0:
            work.retries = list(db.session.scalars(select(Order.id).where(
                Order.router_id == router.id, Order.status == OrderStatus.PAID,
                or_(Order.next_attempt_at.is_(None), Order.next_attempt_at <= utcnow()))))
    quiet = current_app.config["WORKER_POLL_AFTER"]
    for order_id in work.polls:
        if not take_turn(order_id, quiet):  # another worker asked meanwhile
            continue
        order = db.session.get(Order, order_id, populate_existing=True)
        try:
            check_payment(order, CheckSource.WORKER)
        except PaymentError as exc:
            _act("poll failed", order_id=order.id, error=type(exc).__name__)
            continue
        report.polled += 1
        report.provisioned += order.status == OrderStatus.PROVISIONED
        _act("poll", order_id=order.id, status=order.status)
    for order_id in work.retries:
        if not router_health.available(router):  # it stopped answering: the rest waits its turn
            break
        order = db.session.get(Order, order_id, populate_existing=True)
        provisioning.provision_order(order)
        report.provisioned += order.status == OrderStatus.PROVISIONED
        _act("provision", order_id=order.id, status=order.status, attempts=order.attempts)
    if work.check and router_health.available(router):
        _check(router, report)
    return report


def _check(router: Router, report: SweepReport) -> None:
    change = check_router(router)
    if change is not None:
        report.alerts.append(f"router {router.id} {change}")


def check_router(router: Router) -> router_health.Change | None:
    """Ask the router who it is, over a connection of its own; tell the owner when it went down or came back.

    A tunnelled router whose tunnel the hub reports down is down without a try: nothing can
    reach it, and a try would only wait out the timeout.
    """
    failure = None
    state = tunnel.health(router)
    if state == tunnel.TunnelHealth.HUB_SILENT:
        log.warning("router %s is on the WireGuard hub, which has not reported for %.0f s: is `flask vpn watch` "
                    "running?", router.id, tunnel.HUB_SILENT_AFTER)
    if state in (tunnel.TunnelHealth.WAITING, tunnel.TunnelHealth.DOWN):
        failure = {"failure": "unreachable"}
        change = router_health.failed(router)
    else:
        client = RouterClient(router_address(router))
        try:
            client.facts()
            change = router_health.checked(router)
        except RouterError as exc:
            failure = failure_facts(exc)
            change = router_health.failed(router) if router_health.counts_against(exc) else router_health.checked(router)
        finally:
            client.close()
    db.session.commit()
    _act("router check", router_id=router.id, reachable=failure is None)
    if change is not None:
        router_health.tell_owner(router, change, failure)
    return change


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
            body = _("Un client a payé %(amount)s (commande %(code)s) il y a plus de 10 minutes, mais son ticket "
                     "n'a pas encore pu être créé sur %(router)s.\n\n%(error)s\n\nKiosque réessaie tout seul ; "
                     "vérifiez que le routeur est joignable.",
                     amount=formatting.price(order.amount, order.currency), code=order.code,
                     router=order.router.name, error=formatting.order_problem(order))
        notifications.send_alert(order.router.notify_email or owner.email, subject, body)
        record(order, EventKind.OWNER_ALERTED, to=order.router.notify_email or owner.email,
               minutes=current_app.config["STUCK_ORDER_ALERT_AFTER"] // 60)
        db.session.commit()
        sent.append(f"stuck order {order.id}")
        _act("alert stuck order", order_id=order.id)
    return sent
