"""The owner's settings page: name, language and sale emails, a new password, a new email address
confirmed by a link; and the daily summary the worker sends instead of one email per sale, through
a real SMTP server."""

import re
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.formatting import price
from portal.models import EventKind, Order, OrderEvent, OrderStatus, Owner, SaleEmail
from portal.services import notifications
from tests.conftest import Browser, mail_settings, page_text, text_of
from tests.factories import make_order, make_owner, make_router

ZONE = ZoneInfo("Africa/Porto-Novo")


@pytest.fixture
def app_config(app_config, smtp) -> dict:
    return {**app_config, **mail_settings(smtp)}


def fresh_owner(email: str = "owner@example.com") -> Owner:
    db.session.expire_all()
    return db.session.scalar(select(Owner).where(Owner.email == email))


def wait_for_mail(smtp, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while len(smtp.envelopes) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(smtp.envelopes) == count


def test_name_language_and_sale_emails_are_saved(browser):
    page = page_text(browser.get("/owner/settings/"))
    assert "Un e-mail à chaque vente" in page and 'href="/owner/settings/"' in page
    done = browser.post("/owner/settings/profile", {"name": "Awa Maquis", "locale": "en", "sale_email": "daily"})
    assert done.status_code == 302
    owner = fresh_owner()
    assert (owner.name, owner.locale, owner.sale_email) == ("Awa Maquis", "en", SaleEmail.DAILY)
    refused = browser.post("/owner/settings/profile", {"name": "x", "locale": "de", "sale_email": "hourly"})
    assert refused.status_code == 422
    assert fresh_owner().locale == "en"


def test_a_new_password_needs_the_current_one_and_ends_the_other_sessions(app, browser):
    elsewhere = Browser(app.test_client())
    assert elsewhere.login("owner@example.com", "owner-password").status_code == 302
    wrong = browser.post("/owner/settings/password", {"password-current_password": "not-it",
                                                      "password-password": "a-new-password",
                                                      "password-confirm": "a-new-password"})
    assert wrong.status_code == 422 and "Ce n'est pas votre mot de passe actuel." in page_text(wrong)
    assert fresh_owner().check_password("owner-password")

    done = browser.post("/owner/settings/password", {"password-current_password": "owner-password",
                                                     "password-password": "a-new-password",
                                                     "password-confirm": "a-new-password"})
    assert done.status_code == 302
    assert fresh_owner().check_password("a-new-password")
    assert browser.get("/owner/settings/").status_code == 200  # this session goes on
    assert elsewhere.get("/owner/settings/").status_code == 302  # the other one ended


def test_a_new_email_address_is_confirmed_by_a_link_sent_to_it(app, browser, smtp):
    make_owner("taken@example.com")
    wrong = browser.post("/owner/settings/email", {"email-email": "new@example.com",
                                                   "email-current_password": "nope"}, buffered=True)
    assert wrong.status_code == 422 and not smtp.envelopes

    # An address another owner has: the same answer, and no link.
    taken = browser.post("/owner/settings/email", {"email-email": "taken@example.com",
                                                   "email-current_password": "owner-password"}, buffered=True)
    assert taken.status_code == 302
    asked = browser.post("/owner/settings/email", {"email-email": "New@Example.com",
                                                   "email-current_password": "owner-password"}, buffered=True)
    assert asked.status_code == 302
    assert "Un lien de confirmation vient de partir vers new@example.com" in page_text(browser.get("/owner/settings/"))
    wait_for_mail(smtp)
    [envelope], [message] = smtp.envelopes, smtp.messages()
    assert envelope.rcpt_tos == ["new@example.com"]
    assert message["Subject"] == "Kiosque : confirmer votre nouvelle adresse"
    link = re.search(r"https?://\S+(/owner/settings/email/confirm/\S+)", text_of(message)).group(1)
    assert fresh_owner().email == "owner@example.com"  # not before the link is opened

    opened = app.test_client().get(link, buffered=True)  # another browser: the mailbox's
    assert opened.status_code == 302 and opened.headers["Cache-Control"] == "no-store"
    assert fresh_owner("new@example.com") is not None and fresh_owner() is None
    wait_for_mail(smtp, 2)
    notice = smtp.messages()[1]
    assert smtp.envelopes[1].rcpt_tos == ["owner@example.com"]
    assert "se connecte désormais avec new@example.com" in text_of(notice)
    assert app.test_client().get(link).status_code == 400  # once only
    assert Browser(app.test_client()).login("new@example.com", "owner-password").status_code == 302


def paid_yesterday(owner: Owner, amount: int, hour: int, status=OrderStatus.PROVISIONED) -> Order:
    router = owner.routers[0] if owner.routers else make_router(owner, name="Maquis Akwa")
    yesterday = datetime.now(ZONE).date() - timedelta(days=1)
    paid_at = datetime.combine(yesterday, datetime.min.time(), ZONE).replace(hour=hour).astimezone(timezone.utc)
    return make_order(router, status=status, amount=amount, paid_at=paid_at, provisioned_at=paid_at)


def morning(hour: int) -> datetime:
    return datetime.combine(datetime.now(ZONE).date(), datetime.min.time(), ZONE).replace(hour=hour)


def test_a_daily_summary_instead_of_one_email_per_sale_sent_once(app, smtp):
    owner = make_owner("daily@example.com")
    owner.sale_email = SaleEmail.DAILY
    db.session.commit()
    first = paid_yesterday(owner, 200, 9)
    second = paid_yesterday(owner, 500, 21)
    today = make_order(owner.routers[0], status=OrderStatus.PROVISIONED, amount=1000, paid_at=morning(6),
                       provisioned_at=morning(6))
    other = make_owner("each@example.com")  # one email per sale: no summary
    paid_yesterday(other, 300, 10)

    assert notifications.send_daily_summaries(morning(6)) == 0  # before DAILY_SUMMARY_HOUR
    assert not smtp.envelopes

    assert notifications.send_daily_summaries(morning(8)) == 1
    assert notifications.send_daily_summaries(morning(9)) == 0  # one a day
    [envelope], [message] = smtp.envelopes, smtp.messages()
    assert envelope.rcpt_tos == ["daily@example.com"]
    assert message["Subject"].startswith("Ventes du ") and message["Subject"].endswith(": " + price(700, "XOF"))
    body = text_of(message)
    assert "Maquis Akwa" in body and "Tickets" in body and "1000" not in body
    db.session.expire_all()
    assert db.session.get(Order, first.id).email_sent_at and db.session.get(Order, second.id).email_sent_at
    assert db.session.get(Order, today.id).email_sent_at is None  # tomorrow's summary
    assert db.session.scalar(select(OrderEvent.detail).where(
        OrderEvent.order_id == first.id, OrderEvent.kind == EventKind.SALE_EMAIL_SENT)) \
        == "daily summary to daily@example.com"
    assert fresh_owner("daily@example.com").summary_day == datetime.now(ZONE).date() - timedelta(days=1)
    # The per-sale emails leave daily owners' sales to their summaries.
    assert notifications.send_sale_emails() == 1  # the other owner's sale only
    assert [e.rcpt_tos for e in smtp.envelopes[1:]] == [["each@example.com"]]


def test_a_summary_that_could_not_leave_is_sent_at_the_next_sweep(app, smtp):
    owner = make_owner("daily@example.com")
    owner.sale_email = SaleEmail.DAILY
    db.session.commit()
    paid_yesterday(owner, 200, 9)
    smtp.stop()
    assert notifications.send_daily_summaries(morning(8)) == 0
    assert fresh_owner("daily@example.com").summary_day is None  # the day was given back
    smtp.start()
    assert notifications.send_daily_summaries(morning(8)) == 1
    assert len(smtp.envelopes) == 1


def test_two_workers_claiming_the_same_summary_send_it_once(app, smtp):
    owner = make_owner("daily@example.com")
    owner.sale_email = SaleEmail.DAILY
    db.session.commit()
    day = datetime.now(ZONE).date() - timedelta(days=1)
    assert notifications._claim_summary(owner.id, None, day) is True
    assert notifications._claim_summary(owner.id, None, day) is False  # the second worker saw the same day
    assert notifications.send_daily_summaries(morning(8)) == 0
    assert not smtp.envelopes and isinstance(fresh_owner("daily@example.com").summary_day, date)
