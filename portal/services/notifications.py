"""The owner's email for each sale or a daily summary, alerts, and account emails: sent without
ever holding up or breaking a payment.

Sale emails are the worker's: a paid webhook records the sale, and the worker's next sweep sends
the emails due over one SMTP session (`send_sale_emails`), unless the owner chose a daily summary,
one email a day with the day before's sales (`send_daily_summaries`). Every sending failure is
caught, logged and recorded on the order, and a later sweep tries again.

Flask-Mail 0.10 opens its SMTP connection without a timeout, so a mail server that accepts the
connection and then stays silent would hold the worker for ever. `_TimedConnection` is
Flask-Mail's own connection with `configure_host` redone to pass MAIL_TIMEOUT, and `_Message`
its message written out without parsing its headers again. Everything else stays Flask-Mail's:
the MAIL_* settings, MAIL_SUPPRESS_SEND (on by default under TESTING) and
`mail.record_messages()` for tests.
"""

import logging
import secrets
import smtplib
import ssl
from datetime import date, datetime, time, timedelta
from email import policy
from time import monotonic
from zoneinfo import ZoneInfo

from flask import current_app, render_template
from flask_babel import force_locale, format_date, format_datetime
from flask_babel import gettext as _
from flask_mail import BadHeaderError, Connection, Message
from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.formatting import price, provider_title, sale_channel
from portal.models import EventKind, Order, OrderEvent, OrderStatus, Owner, Router, SaleEmail, utcnow
from portal.services import dashboard

log = logging.getLogger(__name__)

MAX_SALE_EMAIL_ATTEMPTS = 10
SALE_EMAIL_BATCH = 100  # sale emails sent per SMTP session
SALE_EMAIL_BATCHES = 20  # sessions per sweep at most: 2,000 sales told every WORKER_INTERVAL
# A claimed sale email attempt lasts this many exchanges (each bounded by MAIL_TIMEOUT): enough for
# a session to open (connect, EHLO, STARTTLS and its handshake, EHLO again, AUTH) and send.
SMTP_EXCHANGES = 12
# smtplib raises SMTPException (an OSError itself) or a plain OSError, which includes
# socket.timeout (TimeoutError); Flask-Mail raises BadHeaderError for a line break in a header.
SEND_ERRORS = (smtplib.SMTPException, OSError, BadHeaderError)
# A message refused on its own, the session still usable for the next (smtplib resets it).
MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, BadHeaderError)
MESSAGE_EXCHANGES = 4  # MAIL, RCPT, DATA, the message


class _TimedConnection(Connection):
    """Flask-Mail's connection, with a timeout on every exchange and the server's certificate verified.

    smtplib verifies no certificate unless given a context. MAIL_DEBUG is not honoured: smtplib's
    debug output prints the AUTH exchange, that is the password.
    """

    def configure_host(self) -> smtplib.SMTP:
        settings = self.mail
        timeout = current_app.config["MAIL_TIMEOUT"]
        tls = ssl.create_default_context()
        if settings.use_ssl:
            host = smtplib.SMTP_SSL(settings.server, settings.port, timeout=timeout, context=tls)
        else:
            host = smtplib.SMTP(settings.server, settings.port, timeout=timeout)
        try:
            if settings.use_tls:
                host.starttls(context=tls)
            if settings.username and settings.password:
                host.login(settings.username, settings.password)
        except SEND_ERRORS:
            host.close()
            raise
        return host


class _AsMade(policy.Compat32):
    """Headers written out as Flask-Mail made them.

    Flask-Mail encodes the headers it writes (RFC 2047) and refuses line breaks in them; the
    standard library's `SMTP` policy would parse each one again to fold it anew (a sale email
    took 1.7 ms that way), and even `compat32` wraps each in a `Header` to encode it again. A
    header of printable ASCII is written as it is; anything else (a line break, which `compat32`
    turns into a continuation line rather than a new header, or text someone passed unencoded)
    still goes through `compat32`.
    """

    def _fold(self, name, value, sanitize):
        if isinstance(value, str) and value.isascii() and value.isprintable():
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


_AS_MADE = _AsMade(linesep="\r\n", max_line_length=None)


class _Message(Message):
    """Flask-Mail's message, its headers written out as Flask-Mail encoded them."""

    def as_bytes(self) -> bytes:
        message = self._message()
        # The standard library draws a boundary and compiles a new regular expression to check it
        # is not in the text; 128 random bits cannot be there, whatever an owner named a router.
        for part in message.walk():
            if part.is_multipart():
                part.set_boundary(f"=_{secrets.token_hex(16)}")
        return message.as_bytes(policy=_AS_MADE)


def _deliver(message: Message) -> None:
    """Send one message over a new connection; raises one of SEND_ERRORS."""
    with _TimedConnection(current_app.extensions["mail"]) as connection:
        connection.send(message)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def send_alert(owner_email: str, subject: str, body: str) -> bool:
    """Email an owner about trouble (a router down...); False when it could not be sent, never raises."""
    try:
        _deliver(_Message(subject, recipients=[owner_email], body=body))
    except SEND_ERRORS as exc:
        log.warning("alert to %s not sent: %s", owner_email, _reason(exc))
        return False
    log.info("alert to %s sent", owner_email)
    return True


def send_password_reset(owner: Owner, link: str) -> bool:
    """Email the owner a link to choose a new password, in their language; never raises.

    The link opens the owner's account: it is logged nowhere, nor is it kept.
    """
    with force_locale(_owner_locale(owner.locale)):
        minutes = current_app.config["PASSWORD_RESET_MAX_AGE"] // 60
        subject = _("Kiosque : choisir un nouveau mot de passe")
        body = _("Bonjour,\n\nQuelqu'un, sans doute vous, a demandé à changer le mot de passe du compte Kiosque "
                 "%(email)s.\n\nPour choisir un nouveau mot de passe, ouvrez ce lien dans les %(minutes)s "
                 "minutes (il ne sert qu'une fois) :\n\n%(link)s\n\nSi vous n'avez rien demandé, ignorez ce "
                 "message : votre mot de passe ne change pas.\n",
                 email=owner.email, minutes=minutes, link=link)
    return _send_account_email(owner, owner.email, subject, body, "password reset email")


def send_email_confirmation(owner: Owner, new_email: str, link: str) -> bool:
    """Email the new address a link that makes it the owner's; never raises. The link is logged nowhere."""
    with force_locale(_owner_locale(owner.locale)):
        hours = current_app.config["EMAIL_CHANGE_MAX_AGE"] // 3600
        subject = _("Kiosque : confirmer votre nouvelle adresse")
        body = _("Bonjour,\n\nLe compte Kiosque %(email)s demande à recevoir ses e-mails à cette adresse et à "
                 "s'en servir pour se connecter.\n\nPour confirmer, ouvrez ce lien dans les %(hours)s heures "
                 "(il ne sert qu'une fois) :\n\n%(link)s\n\nSi vous n'avez rien demandé, ignorez ce message : "
                 "rien ne change.\n", email=owner.email, hours=hours, link=link)
    return _send_account_email(owner, new_email, subject, body, "email confirmation")


def send_email_changed_notice(owner_id: int, former_email: str) -> bool:
    """Tell the former address that the account now answers to another one; never raises."""
    owner = db.session.get(Owner, owner_id)
    if owner is None:
        return False
    with force_locale(_owner_locale(owner.locale)):
        subject = _("Kiosque : l'adresse de votre compte a changé")
        body = _("Bonjour,\n\nLe compte Kiosque qui avait l'adresse %(former)s se connecte désormais avec "
                 "%(email)s, et ses e-mails y partent.\n\nSi ce n'est pas vous, prévenez tout de suite "
                 "l'exploitant de Kiosque.\n", former=former_email, email=owner.email)
    return _send_account_email(owner, former_email, subject, body, "email change notice")


def _send_account_email(owner: Owner, recipient: str, subject: str, body: str, what: str) -> bool:
    message = _Message(subject, recipients=[recipient], body=body,
                       extra_headers={"Content-Language": _owner_locale(owner.locale)})
    try:
        _deliver(message)
    except SEND_ERRORS as exc:
        log.warning("%s for owner %s not sent: %s", what, owner.id, _reason(exc))
        return False
    log.info("%s for owner %s sent", what, owner.id)
    return True


def send_sale_emails(batches: int = SALE_EMAIL_BATCHES) -> int:
    """Email owners the sales not yet told, SALE_EMAIL_BATCH per SMTP session, at most `batches`
    sessions; returns how many went out. For the worker.

    A paid webhook only records the sale: neither a provider's callback nor a buyer's page waits on
    a mail server, and a burst of sales costs a session per batch, not one each.
    """
    sent = 0
    for _batch in range(batches):
        went, full = _send_batch()
        sent += went
        if not full or not went:  # all sent, or the mail server is failing: the next sweep goes on
            break
    return sent


def _send_batch() -> tuple[int, bool]:
    """Send one batch over one session; (how many went out, whether the batch was full).

    The orders are claimed first (their attempt counted and timed), so several workers never send
    one twice; the session ends before the claim could lapse. A message refused alone (a bad
    address) is recorded and the others go on; when the session itself fails, the order it was on
    is recorded and the ones not tried are given back for the next sweep. A failed order is tried
    again once its claim is over.
    """
    hold = timedelta(seconds=SMTP_EXCHANGES * current_app.config["MAIL_TIMEOUT"])
    now = utcnow()
    due = (Order.status == OrderStatus.PROVISIONED, Order.email_sent_at.is_(None),
           Order.email_attempts < MAX_SALE_EMAIL_ATTEMPTS,
           or_(Order.email_attempted_at.is_(None), Order.email_attempted_at < now - hold))
    ids = db.session.scalars(
        select(Order.id).join(Owner, Order.owner_id == Owner.id).where(*due, Owner.sale_email == SaleEmail.EACH)
        .order_by(Order.email_attempts, Order.id).limit(SALE_EMAIL_BATCH)).all()
    if not ids:
        return 0, False
    claimed = db.session.scalars(
        update(Order).where(Order.id.in_(ids), *due)
        .values(email_attempts=Order.email_attempts + 1, email_attempted_at=now)
        .returning(Order.id).execution_options(synchronize_session=False)).all()
    db.session.commit()
    if not claimed:  # another worker took them between our look and our claim
        return 0, False
    orders = db.session.scalars(
        select(Order).where(Order.id.in_(claimed)).order_by(Order.email_attempts, Order.id)
        .options(joinedload(Order.router).joinedload(Router.owner), joinedload(Order.ticket))
        .execution_options(populate_existing=True)).unique().all()  # as claimed, not as the session had them
    sent, failed = _send_sales(orders, deadline=monotonic() + hold.total_seconds())
    _record_sales(orders, sent, failed)
    return len(sent), len(ids) == SALE_EMAIL_BATCH


def _send_sales(orders: list[Order], deadline: float) -> tuple[dict[int, str], dict[int, str]]:
    """Send the orders' emails over one session until `deadline`; (recipient, reason) by order id."""
    sent: dict[int, str] = {}
    failed: dict[int, str] = {}
    message_time = MESSAGE_EXCHANGES * current_app.config["MAIL_TIMEOUT"]
    sending = None
    try:
        with _TimedConnection(current_app.extensions["mail"]) as connection:
            for order in orders:
                if monotonic() + message_time > deadline:
                    break  # the rest would go after their claim lapsed: they are given back
                recipient = order.router.notify_email or order.router.owner.email
                sending = order
                try:
                    connection.send(_sale_message(order, recipient))
                except MESSAGE_ERRORS as exc:
                    failed[order.id] = _reason(exc)
                else:
                    sent[order.id] = recipient
                sending = None
    except SEND_ERRORS as exc:
        # The session failed on the order it was sending, or before the first one; a failed
        # goodbye after the messages changes nothing.
        at_fault = sending or (orders[0] if not sent and not failed else None)
        if at_fault is not None:
            failed[at_fault.id] = _reason(exc)
    return sent, failed


def _record_sales(orders: list[Order], sent: dict[int, str], failed: dict[int, str]) -> None:
    """Mark the sent emails, record the failures, and give the untried orders back; one transaction."""
    now = utcnow()
    if sent:
        db.session.execute(update(Order).where(Order.id.in_(sent)).values(email_sent_at=now)
                           .execution_options(synchronize_session=False))
    events = [{"order_id": i, "at": now, "kind": EventKind.SALE_EMAIL_SENT, "detail": "", "facts": {"to": to}}
              for i, to in sent.items()]
    attempts = {o.id: o.email_attempts for o in orders}
    events += [{"order_id": i, "at": now, "kind": EventKind.SALE_EMAIL_NOT_SENT, "detail": reason[:500],
                "facts": {"attempt": attempts[i]}} for i, reason in failed.items()]
    if events:
        db.session.execute(insert(OrderEvent), events)
    untried = [o.id for o in orders if o.id not in sent and o.id not in failed]
    if untried:
        db.session.execute(update(Order).where(Order.id.in_(untried), Order.email_sent_at.is_(None))
                           .values(email_attempts=Order.email_attempts - 1, email_attempted_at=None)
                           .execution_options(synchronize_session=False))
    db.session.commit()
    for order_id, reason in failed.items():
        log.warning("sale email for order %s not sent (attempt %s): %s", order_id, attempts[order_id], reason)
    log.info("sale emails: %s sent, %s not sent, %s left for the next sweep", len(sent), len(failed), len(untried))


def _sale_message(order: Order, recipient: str) -> Message:
    """The sale email in the owner's language, as plain text with a small HTML alternative.

    The words are made here rather than in the templates, so that both parts say the same and
    the message extraction (which reads Python and HTML templates) finds them.
    """
    router = order.router
    locale = _owner_locale(router.owner.locale)
    with force_locale(locale):
        amount = price(order.amount, order.currency)
        facts = [
            (_("Routeur"), router.name),
            (_("Forfait"), order.plan_label),
            (_("Montant"), amount),
            (_("Référence de paiement"), order.payer_reference or order.provider_ref or ""),
            (_("Payé via"), provider_title(order.provider)),
            (_("Commande"), order.code),
        ]
        if order.payer_phone:
            facts.append((_("Téléphone du client"), order.payer_phone))
        if order.ticket is not None:
            # The username only: for a voucher (vc) it is the whole code, which the owner may
            # need to help a buyer; the password of a user-and-password (up) ticket stays out
            # of mailboxes.
            facts.append((_("Ticket"), order.ticket.username))
        facts.append((_("Date"), format_datetime(order.paid_at, "long")))
        subject = _("Vente sur %(router)s : %(plan)s, %(amount)s",
                    router=router.name, plan=order.plan_label, amount=amount)
        context = {"title": _("Nouvelle vente"), "facts": facts, "lang": locale}
        return _Message(
            subject,
            recipients=[recipient],
            body=render_template("emails/sale.txt", **context),
            html=render_template("emails/sale.html", **context),
            extra_headers={"Content-Language": locale},
        )


def _owner_locale(locale: str) -> str:
    """The owner's language if the app speaks it, else the default (French)."""
    config = current_app.config
    return locale if locale in config["LANGUAGES"] else config["BABEL_DEFAULT_LOCALE"]


# -- the daily summary ----------------------------------------------------------------------------------


def send_daily_summaries(now: datetime | None = None) -> int:
    """From DAILY_SUMMARY_HOUR (local time) on, email each owner who chose it the day before's sales.

    Each owner's day is claimed with a conditional update first, so several workers send it
    once; a failed sending gives the claim back for the next sweep. Returns how many went out.
    """
    config = current_app.config
    local = (now or utcnow()).astimezone(ZoneInfo(config["TIMEZONE"]))
    if local.hour < config["DAILY_SUMMARY_HOUR"]:
        return 0
    day = local.date() - timedelta(days=1)
    due = db.session.scalars(select(Owner).where(
        Owner.sale_email == SaleEmail.DAILY, (Owner.summary_day.is_(None)) | (Owner.summary_day < day))).all()
    sent = 0
    for owner in due:
        if not _claim_summary(owner.id, owner.summary_day, day):
            continue
        if _send_summary(owner, day):
            sent += 1
        else:
            _claim_summary(owner.id, day, owner.summary_day)  # give the day back
    return sent


def _claim_summary(owner_id: int, expected: date | None, day: date | None) -> bool:
    """Move the owner's summarized day from `expected` to `day`; False when someone else did first."""
    current = Owner.summary_day.is_(None) if expected is None else Owner.summary_day == expected
    claimed = db.session.execute(update(Owner).where(Owner.id == owner_id, current).values(summary_day=day)
                                 .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(claimed)


def _send_summary(owner: Owner, day: date) -> bool:
    """Send one day's summary; the online sales it tells of count as emailed."""
    summary = dashboard.day_summary(owner, day)
    locale = _owner_locale(owner.locale)
    with force_locale(locale):
        when = format_date(day, "long")
        total = price(summary.total.revenue, "XOF")
        subject = _("Ventes du %(day)s : %(total)s", day=when, total=total)
        facts = [(_("Total"), total), (_("Tickets"), str(summary.total.tickets))]
        for title, groups, name_of in ((_("Par routeur"), summary.by_router, str),
                                       (_("Par forfait"), summary.by_plan, str),
                                       (_("Par moyen de paiement"), summary.by_provider, sale_channel)):
            facts += [(f"{title} · {name_of(name)}", f"{price(t.revenue, 'XOF')} ({t.tickets})")
                      for name, t in sorted(groups.items())]
        context = {"title": _("Ventes du %(day)s", day=when), "facts": facts, "lang": locale}
        message = _Message(subject, recipients=[owner.email],
                           body=render_template("emails/sale.txt", **context),
                           html=render_template("emails/sale.html", **context),
                           extra_headers={"Content-Language": locale})
    try:
        _deliver(message)
    except SEND_ERRORS as exc:
        log.warning("daily summary of %s for owner %s not sent: %s", day, owner.id, _reason(exc))
        return False
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    start = datetime.combine(day, time(), zone)
    told = db.session.scalars(select(Order.id).where(
        Order.owner_id == owner.id, Order.status == OrderStatus.PROVISIONED, Order.email_sent_at.is_(None),
        Order.paid_at >= start, Order.paid_at < start + timedelta(days=1))).all()
    if told:
        now = utcnow()
        db.session.execute(update(Order).where(Order.id.in_(told)).values(email_sent_at=now)
                           .execution_options(synchronize_session=False))
        db.session.execute(insert(OrderEvent), [{"order_id": i, "at": now, "kind": EventKind.SALE_EMAIL_SENT,
                                                 "detail": f"daily summary to {owner.email}"} for i in told])
    db.session.commit()
    log.info("daily summary of %s for owner %s sent (%s online sales)", day, owner.id, len(told))
    return True
