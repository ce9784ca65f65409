"""Whether a router answers, and how long to leave one alone when it does not.

A router that fails to answer is left alone for a growing while (15 s, 30 s, 1 min, 2 min, then
5 min): a dead router costs one timeout per while, not one per sweep, webhook or page. The first
time it answers again, its paid orders are retried at once. The owner hears of it once when it
has been down past ROUTER_DOWN_ALERT_AFTER, and once when it is back.

None of these functions commits: the caller owns the transaction.
"""

from datetime import timedelta
from enum import StrEnum

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, or_, update

from portal import formatting
from portal.extensions import db
from portal.models import Order, OrderStatus, Router, utcnow
from portal.routeros.client import (
    NameCollisions,
    RouterCommandError,
    RouterConnectionLost,
    RouterError,
    RouterSlow,
)
from portal.services import notifications, tunnel
from portal.services.tunnel import TunnelHealth
from portal.services.rows import update_if

BACKOFF = (15, 30, 60, 120, 300)  # seconds without trying, after each failure in a row


class Change(StrEnum):
    """What an owner is told about their router."""

    DOWN = "down"
    UP = "up"


def available(router: Router) -> bool:
    """False while a router that stopped answering is left alone."""
    return router.retry_at is None or router.retry_at <= utcnow()


def counts_against(exc: RouterError) -> bool:
    """A failure to open an API session with the router.

    A refused command or a full name space means it answered; a session that broke or went quiet
    after opening proves it is there (and a busy server can make a live router look slow).
    """
    return not isinstance(exc, (RouterCommandError, NameCollisions, RouterSlow, RouterConnectionLost))


def answered(router: Router) -> Change | None:
    """The router answered: forget its failures; UP when the owner had been told it was down."""
    if router.failures == 0 and router.down_since is None:
        return None  # the usual case costs nothing
    back = update_if(router, where={"down_alerted": True}, down_alerted=False)
    update_if(router, last_contact_at=utcnow(), failures=0, retry_at=None, down_since=None)
    # Its paid orders were waiting out their backoff: they go now.
    db.session.execute(update(Order).where(Order.router_id == router.id, Order.status == OrderStatus.PAID)
                       .values(next_attempt_at=None).execution_options(synchronize_session=False))
    return Change.UP if back else None


def failed(router: Router) -> Change | None:
    """The router did not answer: leave it alone a while; DOWN when the owner must be told now.

    Only a failure while the router was not already left alone makes the while longer: calls that
    were under way together fail together, and count as one.
    """
    now = utcnow()
    if update_if(router, or_(Router.retry_at.is_(None), Router.retry_at <= now), increment=("failures",),
                 down_since=func.coalesce(Router.down_since, now)):
        update_if(router, retry_at=now + timedelta(seconds=BACKOFF[min(router.failures, len(BACKOFF)) - 1]))
    # Told once, when it has been down across more than a passing glitch.
    grace = now - timedelta(seconds=current_app.config["ROUTER_DOWN_ALERT_AFTER"])
    told = update_if(router, Router.down_since <= grace, where={"down_alerted": False}, down_alerted=True)
    return Change.DOWN if told else None


def checked(router: Router) -> Change | None:
    """Record a health check's success (last contact, even when nothing was wrong)."""
    change = answered(router)
    update_if(router, last_contact_at=utcnow())
    return change


def tell_owner(router: Router, change: Change, failure: dict | None = None) -> None:
    """Email the router's owner that it went down or came back; never raises.

    `failure` is what went wrong (routers.failure_facts), told in the connection test's words. A
    tunnelled router the hub reports without a recent handshake is said to be "tunnel down"; when
    the hub itself stopped reporting, the owner is told the fault is likely Kiosque's.
    """
    owner = router.owner
    state = tunnel.health(router)
    with force_locale(owner.locale or "fr"):
        if change == Change.DOWN and state in (TunnelHealth.WAITING, TunnelHealth.DOWN):
            subject = _("Tunnel du routeur %(router)s coupé", router=router.name)
            body = _("Le routeur %(router)s ne se manifeste plus dans le tunnel WireGuard de Kiosque : vérifiez "
                     "qu'il est allumé et qu'il a Internet. Les paiements reçus entre-temps sont gardés : leurs "
                     "tickets seront créés dès son retour.", router=router.name)
        elif change == Change.DOWN and state == TunnelHealth.HUB_SILENT:
            subject = _("Routeur %(router)s injoignable", router=router.name)
            body = _("Kiosque n'arrive plus à joindre le routeur %(router)s, et son tunnel WireGuard ne rend plus "
                     "compte de son état : le problème vient sans doute du serveur de Kiosque, pas de votre "
                     "routeur. Les paiements reçus entre-temps sont gardés : leurs tickets seront créés dès son "
                     "retour.", router=router.name)
        elif change == Change.DOWN:
            subject = _("Routeur %(router)s injoignable", router=router.name)
            body = _("Kiosque n'arrive plus à joindre le routeur %(router)s.\n\n%(error)s\n\nLes paiements "
                     "reçus entre-temps sont gardés : leurs tickets seront créés dès son retour.",
                     router=router.name, error=formatting.router_failure(**(failure or {"failure": "other"})))
        else:
            subject = _("Routeur %(router)s de nouveau joignable", router=router.name)
            body = _("Le routeur %(router)s répond de nouveau. Les tickets en attente sont en cours de création.",
                     router=router.name)
    notifications.send_alert(router.notify_email or owner.email, subject, body)
