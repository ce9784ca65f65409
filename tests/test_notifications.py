"""Sale emails and alerts through a real SMTP server (aiosmtpd on a local port, see conftest)."""

import json
import logging
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.formatting import price
from portal.models import Order, OrderEvent, OrderStatus, PaymentAccount, Router, Ticket, TicketStatus, UserMode
from portal.services import notifications
from tests.conftest import SENDER, SMTP_PASSWORD, SMTP_USER, mail_settings, text_of

PAID_AT = datetime(2025, 3, 12, 14, 3, tzinfo=timezone.utc)


@pytest.fixture
def app_config(app_config, smtp) -> dict:
    return {**app_config, **mail_settings(smtp)}


def make_order(owner, *, router_name: str = "Maquis Wifi", notify_email: str = "", user_mode: str = UserMode.VOUCHER,
               username: str = "kx7pq2", password: str = "kx7pq2", payer_reference: str = "FDP-8841-XQ",
               payer_phone: str = "22997001122") -> Order:
    """A provisioned FedaPay sale of a 1-hour plan, with its ticket, committed."""
    router = Router(owner_id=owner.id, name=router_name, host="127.0.0.1", api_username="admin",
                    api_password="r0uter-Secret!", user_mode=user_mode, notify_email=notify_email)
    account = PaymentAccount(owner_id=owner.id, provider="fedapay", label="FedaPay", environment="sandbox",
                             credentials=json.dumps({"public_key": "pk_sandbox_x", "secret_key": "sk_sandbox_x"}))
    db.session.add_all([router, account])
    db.session.flush()
    order = Order(
        intent=f"intent-{router.id}-{username}", owner_id=owner.id, router=router, account=account,
        provider="fedapay", plan_label="1 heure", profile="1h", time_limit="1h", amount=1500, currency="XOF",
        status=OrderStatus.PROVISIONED, provider_ref="104233", payer_reference=payer_reference,
        payer_phone=payer_phone, paid_at=PAID_AT, provisioned_at=datetime.now(timezone.utc),
    )
    ticket = Ticket(router=router, order=order, plan_label="1 heure", price=1500, username=username,
                    password=password, profile="1h", server="all", comment=f"{user_mode}-101-03.12.25-test",
                    status=TicketStatus.CREATED)
    db.session.add_all([order, ticket])
    db.session.commit()
    return order


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def sent(order: Order) -> Order:
    """The order as the database now has it (the worker's writes do not go through the test's objects)."""
    db.session.refresh(order)
    return order


def test_sale_email_goes_to_the_router_notify_address_in_french(app, owner, smtp):
    order = make_order(owner, notify_email="caisse@maquis.test")

    assert notifications.send_sale_emails() == 1

    [envelope] = smtp.envelopes
    assert envelope.rcpt_tos == ["caisse@maquis.test"]
    assert envelope.mail_from == SENDER
    assert smtp.logins == [SMTP_USER]
    [message] = smtp.messages()
    assert message["Subject"] == f"Vente sur Maquis Wifi : 1 heure, {price(1500, 'XOF')}"
    assert message["Content-Language"] == "fr"
    body = text_of(message)
    for expected in ("Nouvelle vente", "Maquis Wifi", "1 heure", price(1500, "XOF"), "FDP-8841-XQ", "FedaPay",
                     order.code, "22997001122", "kx7pq2", "12 mars 2025"):
        assert expected in body
    page = html_of(message)
    assert '<html lang="fr">' in page and "Maquis Wifi" in page and order.code in page
    assert "<img" not in page and "http" not in page  # nothing fetched from elsewhere
    assert sent(order).email_sent_at is not None and order.email_attempts == 1
    event = db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id)).one()
    assert event.kind == "sale email sent" and event.facts == {"to": "caisse@maquis.test"}


def test_without_notify_address_the_owner_gets_it_with_the_provider_reference(app, owner, smtp):
    make_order(owner, payer_reference="", payer_phone="")

    assert notifications.send_sale_emails() == 1

    [envelope] = smtp.envelopes
    assert envelope.rcpt_tos == ["owner@example.com"]
    body = text_of(smtp.messages()[0])
    assert "104233" in body  # the provider's transaction id when the payer saw no other reference
    assert "Téléphone" not in body


def test_a_long_accented_subject_arrives_whole_within_the_line_limit(app, owner, smtp):
    name = "Maquis Étoile du Carrefour Saint-Michel à Cotonou, côté gare routière"  # folded over lines
    make_order(owner, router_name=name)

    assert notifications.send_sale_emails() == 1

    [message] = smtp.messages()
    assert message["Subject"] == f"Vente sur {name} : 1 heure, {price(1500, 'XOF')}"
    assert name in text_of(message)
    [envelope] = smtp.envelopes
    assert max(len(line) for line in envelope.content.splitlines()) <= 998  # RFC 5322


def test_english_owner_gets_the_email_in_english(app, owner, smtp):
    owner.locale = "en"
    make_order(owner)

    assert notifications.send_sale_emails() == 1

    [message] = smtp.messages()
    assert message["Content-Language"] == "en"
    assert '<html lang="en">' in html_of(message)
    assert "March 12, 2025" in text_of(message)  # dates follow the forced locale, whatever the catalogue


def test_user_password_ticket_password_stays_out_of_the_email(app, owner, smtp):
    make_order(owner, user_mode=UserMode.USER_PASSWORD, username="vente42", password="Pw9Zt3")

    assert notifications.send_sale_emails() == 1

    raw = smtp.envelopes[0].content.decode()
    assert "vente42" in text_of(smtp.messages()[0])
    assert "Pw9Zt3" not in raw


def test_a_sale_is_emailed_once(app, owner, smtp):
    order = make_order(owner)

    assert notifications.send_sale_emails() == 1
    assert notifications.send_sale_emails() == 0

    assert len(smtp.envelopes) == 1
    assert sent(order).email_attempts == 1


def test_many_sales_go_in_one_session_per_batch(app, owner, smtp, monkeypatch):
    monkeypatch.setattr(notifications, "SALE_EMAIL_BATCH", 2)
    orders = [make_order(owner, router_name=f"R{i}", username=f"user{i}") for i in range(5)]

    assert notifications.send_sale_emails() == 5

    assert len(smtp.logins) == 3  # sessions: 2 + 2 + 1 emails
    assert sorted(e.rcpt_tos[0] for e in smtp.envelopes) == ["owner@example.com"] * 5
    assert all(sent(o).email_sent_at is not None and o.email_attempts == 1 for o in orders)
    assert notifications.send_sale_emails(batches=1) == 0


def test_workers_sending_at_once_email_each_sale_once(app, owner, smtp, monkeypatch):
    monkeypatch.setattr(notifications, "SALE_EMAIL_BATCH", 3)  # many claims, so that they overlap
    orders = [make_order(owner, router_name=f"R{i}", username=f"user{i}") for i in range(24)]
    start = threading.Barrier(4)
    counts: list[int] = []

    def worker() -> None:
        with app.app_context():
            start.wait()
            try:
                counts.append(notifications.send_sale_emails())
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sum(counts) == 24 and len(smtp.envelopes) == 24
    assert all(sent(o).email_sent_at is not None and o.email_attempts == 1 for o in orders)


def test_an_attempt_under_way_elsewhere_is_left_alone_until_it_surely_ended(app, owner, smtp):
    order = make_order(owner)
    claimed_at = datetime.now(timezone.utc)
    with db.engine.begin() as connection:  # another worker claimed it a moment ago
        connection.execute(update(Order).where(Order.id == order.id)
                           .values(email_attempts=1, email_attempted_at=claimed_at))

    assert notifications.send_sale_emails() == 0
    assert smtp.envelopes == []

    hold = notifications.SMTP_EXCHANGES * app.config["MAIL_TIMEOUT"]
    with db.engine.begin() as connection:  # that worker died before recording anything
        connection.execute(update(Order).where(Order.id == order.id)
                           .values(email_attempted_at=claimed_at - timedelta(seconds=hold + 1)))
    assert notifications.send_sale_emails() == 1
    assert sent(order).email_attempts == 2 and len(smtp.envelopes) == 1


def test_server_down_fails_fast_and_a_later_sweep_sends_it(app, owner, smtp):
    order = make_order(owner)
    smtp.stop()

    started = time.monotonic()
    assert notifications.send_sale_emails() == 0
    assert time.monotonic() - started < 1

    assert sent(order).email_sent_at is None and order.email_attempts == 1
    event = db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id)).one()
    assert event.kind == "sale email not sent" and "ConnectionRefusedError" in event.detail
    assert event.facts == {"attempt": 1}

    smtp.start()
    assert notifications.send_sale_emails() == 0  # the failed attempt is left alone for a while
    order.email_attempted_at -= timedelta(seconds=notifications.SMTP_EXCHANGES * app.config["MAIL_TIMEOUT"] + 1)
    db.session.commit()
    assert notifications.send_sale_emails() == 1
    assert [e.rcpt_tos for e in smtp.envelopes] == [["owner@example.com"]]
    assert sent(order).email_sent_at is not None and order.email_attempts == 2
    assert notifications.send_sale_emails() == 0
    assert len(smtp.envelopes) == 1


def test_a_silent_server_costs_one_timeout_and_the_others_are_given_back(app, owner, smtp):
    app.config["MAIL_TIMEOUT"] = 1
    orders = [make_order(owner, router_name=f"R{i}", username=f"user{i}") for i in range(3)]
    smtp.stop()
    # The kernel completes the TCP handshake for a listening socket; nobody ever says hello.
    with socket.create_server((smtp.host, smtp.port)):
        started = time.monotonic()
        assert notifications.send_sale_emails() == 0
        elapsed = time.monotonic() - started

    assert 0.9 < elapsed < 3
    assert [sent(o).email_attempts for o in orders] == [1, 0, 0]
    assert orders[0].email_attempted_at is not None
    assert orders[1].email_attempted_at is None and orders[2].email_attempted_at is None
    assert all(o.email_sent_at is None for o in orders)


def test_a_refused_address_does_not_hold_up_the_other_owners_emails(app, owner, smtp):
    smtp.refused.add("ancienne@maquis.test")
    refused = make_order(owner, router_name="A", username="first", notify_email="ancienne@maquis.test")
    others = [make_order(owner, router_name=f"R{i}", username=f"user{i}") for i in range(2)]

    assert notifications.send_sale_emails() == 2

    assert len(smtp.logins) == 1 and len(smtp.envelopes) == 2
    assert sent(refused).email_sent_at is None and refused.email_attempts == 1
    event = db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == refused.id)).one()
    assert event.kind == "sale email not sent" and "SMTPRecipientsRefused" in event.detail
    assert all(sent(o).email_sent_at is not None for o in others)


def test_exhausted_unprovisioned_and_daily_owners_orders_are_not_emailed(app, owner, smtp):
    exhausted = make_order(owner, router_name="B", username="tired")
    exhausted.email_attempts = notifications.MAX_SALE_EMAIL_ATTEMPTS
    paid = make_order(owner, router_name="C", username="unpaid")
    paid.status = OrderStatus.PAID
    due = make_order(owner, router_name="D", username="due")
    db.session.commit()

    assert notifications.send_sale_emails() == 1

    assert len(smtp.envelopes) == 1 and "due" in text_of(smtp.messages()[0])
    assert sent(due).email_sent_at is not None
    assert sent(exhausted).email_sent_at is None and sent(paid).email_sent_at is None


def test_alert_is_sent_and_never_raises(app, smtp):
    assert notifications.send_alert("owner@example.com", "Routeur injoignable", "Maquis Wifi ne répond plus.")

    [message] = smtp.messages()
    assert smtp.envelopes[0].rcpt_tos == ["owner@example.com"]
    assert message["Subject"] == "Routeur injoignable"
    assert text_of(message).strip() == "Maquis Wifi ne répond plus."

    smtp.stop()
    assert notifications.send_alert("owner@example.com", "Routeur injoignable", "...") is False


def test_logs_name_no_secret(app, owner, smtp, caplog):
    caplog.set_level(logging.DEBUG, logger="portal")
    order = make_order(owner, user_mode=UserMode.USER_PASSWORD, username="vente42", password="Pw9Zt3")

    assert notifications.send_sale_emails() == 1
    failing = make_order(owner, router_name="Bar du Port", username="kx7pq2", password="kx7pq2")
    smtp.stop()
    assert notifications.send_sale_emails() == 0

    assert [r.levelname for r in caplog.records if r.name == notifications.__name__] == ["INFO", "WARNING", "INFO"]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("portal"))
    # Neither the mail password nor a ticket's credentials (a voucher's name is its password), nor
    # the order code, which opens the order page and its ticket.
    for secret in (SMTP_PASSWORD, "Pw9Zt3", "vente42", "kx7pq2", order.code, failing.code):
        assert secret not in logged
