"""The owner's sales at a glance, on known data."""

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from portal.extensions import db
from portal.models import Order, OrderStatus, PaymentAccount, Router, Ticket, TicketStatus
from portal.services import dashboard
from tests.conftest import page_text

ZONE = ZoneInfo("Africa/Porto-Novo")


@pytest.fixture
def sales(app, owner):
    """Two routers, online sales today, 3 and 20 days ago, a failed order, a cash sale today."""
    now = datetime.now(ZONE).replace(hour=12)
    routers = [Router(owner=owner, name=name, host="10.0.0.1", api_username="a", api_password="p") for name in ("Bar", "Cyber")]
    accounts = [PaymentAccount(owner=owner, provider=p, label=p, credentials="{}") for p in ("fedapay", "cinetpay")]
    db.session.add_all(routers + accounts)
    db.session.flush()

    def order(n, router, account, amount, plan, status, days_ago, **extra):
        return Order(intent=f"i{n}", owner_id=owner.id, router=router, account=account, provider=account.provider,
                     plan_label=plan, profile="1h", amount=amount, currency="XOF", status=status,
                     created_at=now - timedelta(days=days_ago), paid_at=now - timedelta(days=days_ago)
                     if status in (OrderStatus.PAID, OrderStatus.PROVISIONED) else None, **extra)

    db.session.add_all([
        order(1, routers[0], accounts[0], 200, "1 heure", OrderStatus.PROVISIONED, 0, payer_reference="FP-1",
              payer_phone="2290197000001"),
        order(2, routers[1], accounts[1], 500, "1 jour", OrderStatus.PROVISIONED, 0, payer_phone="=cmd|' /C calc'!A0"),
        order(3, routers[0], accounts[0], 500, "1 jour", OrderStatus.PAID, 3),
        order(4, routers[0], accounts[1], 2000, "1 semaine", OrderStatus.PROVISIONED, 20),
        order(5, routers[0], accounts[0], 200, "1 heure", OrderStatus.FAILED, 0),
        Ticket(router=routers[1], plan_label="1 heure", price=200, username="cash01", password="x", profile="1h",
               server="all", comment="vc-111-01.01.26-cash", status=TicketStatus.CREATED, sold_by_hand=True,
               created_on_router_at=now),
    ])
    db.session.commit()
    return routers


def test_periods_sum_revenue_per_router_plan_and_provider(browser, sales):
    owner = sales[0].owner
    today, week, month = dashboard.summaries(owner)
    assert (today.total.revenue, today.total.tickets) == (900, 3)  # 200 + 500 online, 200 cash
    assert (week.total.revenue, week.total.tickets) == (1400, 4)  # + the paid order 3 days ago
    assert (month.total.revenue, month.total.tickets) == (3400, 5)
    assert month.by_router["Bar"].revenue == 2700 and month.by_router["Cyber"].revenue == 700
    assert today.by_provider["cash"].revenue == 200 and today.by_provider["cinetpay"].tickets == 1
    assert month.by_plan["1 semaine"].revenue == 2000
    page = page_text(browser.get("/owner/"))
    assert "900\u00a0FCFA" in page and "3\u202f400\u00a0FCFA" in page and "Espèces" in page
    assert "<svg" in page and page.count("<rect") == 30


def test_orders_filters_and_timeline(browser, sales):
    all_orders = page_text(browser.get("/owner/orders/"))
    assert all_orders.count("/owner/orders/") >= 5
    paid = page_text(browser.get("/owner/orders/?status=paid"))
    assert "payée, ticket en cours" in paid and paid.count('class="card-head status-paid"') == 1
    found = page_text(browser.get("/owner/orders/?q=FP-1"))
    assert found.count('class="card-head status-provisioned"') == 1
    by_router = page_text(browser.get(f"/owner/orders/?router_id={sales[1].id}"))
    assert by_router.count("<code>") == 1
    old = page_text(browser.get("/owner/orders/?to=" + (datetime.now(ZONE) - timedelta(days=10)).date().isoformat()))
    assert old.count("<code>") == 1 and "1 semaine" in old
    junk = browser.get("/owner/orders/?status=nope&provider=<x>&router_id=abc&page=-3")
    assert junk.status_code == 200
    order = db.session.scalar(db.select(Order).where(Order.intent == "i3"))
    detail = page_text(browser.get(f"/owner/orders/{order.id}"))
    assert "Réessayer maintenant" in detail


def test_csv_export_of_filtered_orders_opens_in_a_french_spreadsheet(browser, sales):
    response = browser.get("/owner/orders.csv?provider=cinetpay")
    assert response.mimetype == "text/csv" and response.mimetype_params == {"charset": "utf-8"}
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")  # the byte order mark: Excel reads UTF-8, "Démo" stays "Démo"
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    assert list(rows[0]) == ["Commande", "Créée le", "Payée le", "État", "Routeur", "Forfait", "Montant", "Devise",
                             "Paiement", "Référence de paiement", "Téléphone du client", "Ticket"]
    assert sorted(r["Montant"] for r in rows) == ["2000", "500"]
    assert {r["Routeur"] for r in rows} == {"Bar", "Cyber"}
    today = next(r for r in rows if r["Montant"] == "500")
    assert today["État"] == "ticket livré" and today["Paiement"] == "CinetPay"
    # In the shop's time zone (the fixture's sales are at noon there), as a spreadsheet reads a time.
    assert today["Payée le"] == datetime.now(ZONE).strftime("%Y-%m-%d") + " 12:" + today["Payée le"][14:]
    assert today["Payée le"][11:13] == "12"
    assert today["Téléphone du client"].startswith("'=")  # a formula typed as a phone number stays text


def test_csv_export_in_english_is_comma_separated_with_english_headers(browser, sales):
    browser.get("/lang/en")
    text = browser.get("/owner/orders.csv?provider=cinetpay").get_data().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["Router"] in ("Bar", "Cyber") and {r["Status"] for r in rows} == {"ticket delivered"}


@pytest.mark.parametrize("query", ["to=9999-12-31", "from=9999-12-31", "from=0001-01-01", "to=0001-01-01",
                                   "from=garbage", "to=2025-02-30", "from=2025-01-01&to=99999-01-01"])
def test_a_date_the_list_cannot_filter_on_is_a_form_error_never_a_500(browser, sales, query):
    listed = browser.get(f"/owner/orders/?{query}")
    assert listed.status_code == 400
    page = page_text(listed)
    assert "Date non valide : choisissez un jour entre le 1 janv. 2000 et le 31 déc. 2100." in page
    assert "<code>" not in page  # no orders listed under a filter that was not applied
    exported = browser.get(f"/owner/orders.csv?{query}")
    assert exported.status_code == 400 and exported.mimetype == "text/html"
    assert "Date non valide" in page_text(exported)


def test_the_widest_dates_allowed_still_filter(browser, sales):
    page = page_text(browser.get(f"/owner/orders/?from={dashboard.FIRST_DAY}&to={dashboard.LAST_DAY}"))
    assert page.count("<code>") == 5
    rows = list(csv.DictReader(io.StringIO(browser.get(f"/owner/orders.csv?to={dashboard.LAST_DAY}").get_data(as_text=True))))
    assert len(rows) == 5


@pytest.mark.parametrize("typed", ["2290197000001", "97 00 00 01", "+229 01 97 00 00 01", "0197000001", "01970"])
def test_a_phone_is_found_however_it_is_written(browser, sales, typed):
    page = page_text(browser.get("/owner/orders/", query_string={"q": typed}))
    assert page.count("<code>") == 1 and "1 heure" in page


def test_a_search_is_no_pattern(browser, sales):
    assert page_text(browser.get("/owner/orders/?q=%25")).count("<code>") == 0
