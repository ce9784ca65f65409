"""The owner's email for each sale, and alerts: sent without ever holding up or breaking a payment.

A sale email is sent after the sale is committed. Every sending failure is caught, logged and
recorded on the order, and the worker tries again later (`retry_unsent_sale_emails`).

Flask-Mail 0.10 opens its SMTP connection without a timeout, so a mail server that accepts the
connection and then stays silent would hold the payment request for ever. `_TimedConnection` is
Flask-Mail's own connection with `configure_host` redone to pass MAIL_TIMEOUT. Everything else
stays Flask-Mail's: `Message`, the MAIL_* settings, MAIL_SUPPRESS_SEND (on by default under
TESTING) and `mail.record_messages()` for tests.
"""

import logging
import smtplib
import ssl
from datetime import timedelta

from flask import current_app, render_template
from flask_babel import force_locale, format_datetime
from flask_babel import gettext as _
from flask_mail import BadHeaderError, Connection, Message
from sqlalchemy import select, update

from portal.extensions import db
from portal.formatting import price, provider_title
from portal.models import EventKind, Order, OrderEvent, OrderStatus, Owner, utcnow

log = logging.getLogger(__name__)

MAX_SALE_EMAIL_ATTEMPTS = 10
# Bounds the time one SMTP session can take (each exchange is bounded by MAIL_TIMEOUT): connect,
# EHLO, STARTTLS and its handshake, EHLO again, AUTH, MAIL, RCPT, DATA, the message, QUIT.
SMTP_EXCHANGES = 12
# smtplib raises SMTPException (an OSError itself) or a plain OSError, which includes
# socket.timeout (TimeoutError); Flask-Mail raises BadHeaderError for a line break in a header.
SEND_ERRORS = (smtplib.SMTPException, OSError, BadHeaderError)


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


def _deliver(message: Message) -> None:
    """Send one message over a new connection; raises one of SEND_ERRORS."""
    with _TimedConnection(current_app.extensions["mail"]) as connection:
        connection.send(message)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def send_alert(owner_email: str, subject: str, body: str) -> bool:
    """Email an owner about trouble (a router down...); False when it could not be sent, never raises."""
    try:
        _deliver(Message(subject, recipients=[owner_email], body=body))
    except SEND_ERRORS as exc:
        log.warning("alert to %s not sent: %s", owner_email, _reason(exc))
        return False
    log.info("alert to %s sent", owner_email)
    return True


def send_password_reset(owner: Owner, link: str) -> bool:
    """Email the owner a link to choose a new password, in their language; never raises.

    The link opens the owner's account: it is logged nowhere, nor is it kept.
    """
    locale = _owner_locale(owner.locale)
    with force_locale(locale):
        minutes = current_app.config["PASSWORD_RESET_MAX_AGE"] // 60
        message = Message(
            _("Kiosque : choisir un nouveau mot de passe"),
            recipients=[owner.email],
            body=_("Bonjour,\n\nQuelqu'un, sans doute vous, a demandé à changer le mot de passe du compte Kiosque "
                   "%(email)s.\n\nPour choisir un nouveau mot de passe, ouvrez ce lien dans les %(minutes)s "
                   "minutes (il ne sert qu'une fois) :\n\n%(link)s\n\nSi vous n'avez rien demandé, ignorez ce "
                   "message : votre mot de passe ne change pas.\n",
                   email=owner.email, minutes=minutes, link=link),
            extra_headers={"Content-Language": locale},
        )
    try:
        _deliver(message)
    except SEND_ERRORS as exc:
        log.warning("password reset email for owner %s not sent: %s", owner.id, _reason(exc))
        return False
    log.info("password reset email for owner %s sent", owner.id)
    return True


def send_sale_email(order: Order) -> bool:
    """Tell the owner about a sale, once. Call it after the sale is committed: it never raises.

    True when the email has been sent, now or earlier. False when it could not be: the attempt is
    recorded on the order and `retry_unsent_sale_emails` tries again later.
    """
    if order.email_sent_at is not None:
        return True
    # Claim the attempt: of two callers that saw the same count, only one sends.
    claimed = db.session.execute(
        update(Order)
        .where(Order.id == order.id, Order.email_sent_at.is_(None), Order.email_attempts == order.email_attempts)
        .values(email_attempts=Order.email_attempts + 1)
    ).rowcount
    db.session.commit()
    if not claimed:
        return order.email_sent_at is not None
    router = order.router
    recipient = router.notify_email or router.owner.email
    try:
        _deliver(_sale_message(order, recipient))
    except SEND_ERRORS as exc:
        reason = _reason(exc)
        db.session.add(OrderEvent(order_id=order.id, kind=EventKind.SALE_EMAIL_NOT_SENT, detail=reason[:500],
                                  facts={"attempt": order.email_attempts}))
        db.session.commit()
        log.warning("sale email for order %s to %s not sent (attempt %s): %s",
                    order.id, recipient, order.email_attempts, reason)
        return False
    order.email_sent_at = utcnow()
    db.session.add(OrderEvent(order_id=order.id, kind=EventKind.SALE_EMAIL_SENT, facts={"to": recipient}))
    db.session.commit()
    log.info("sale email for order %s sent to %s (attempt %s)", order.id, recipient, order.email_attempts)
    return True


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
        return Message(
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


def retry_unsent_sale_emails(limit: int = 50) -> int:
    """Try again the sale emails that could not be sent; returns how many went out. For the worker."""
    # An order provisioned just now is left to its own first attempt, which may still be talking
    # to the mail server: retrying it now could send a second email for the same sale.
    settled = utcnow() - timedelta(seconds=SMTP_EXCHANGES * current_app.config["MAIL_TIMEOUT"])
    pending = db.session.scalars(
        select(Order)
        .where(Order.status == OrderStatus.PROVISIONED, Order.email_sent_at.is_(None),
               Order.email_attempts < MAX_SALE_EMAIL_ATTEMPTS, Order.provisioned_at < settled)
        .order_by(Order.email_attempts, Order.id)
        .limit(limit)
    ).all()
    sent = 0
    for order in pending:
        if not send_sale_email(order):
            # Most often the mail server itself is at fault: the others wait for the next sweep
            # rather than for a timeout each. Fewest attempts first, so a bad address soon moves
            # to the back of the queue.
            break
        sent += 1
    return sent
