"""Sales at a glance for an owner: totals per period, daily sales, the orders list and its export."""

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.numbers import get_decimal_symbol
from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, or_, select

from portal import formatting
from portal.extensions import db
from portal.models import Order, OrderStatus, Owner, Router, Ticket, TicketStatus

# Money received: paid orders count even while their ticket is still being made.
RECEIVED = (OrderStatus.PAID, OrderStatus.PROVISIONED)
CASH = "cash"  # the "provider" of tickets sold by hand
PERIODS = (1, 7, 30)
PAGE_SIZE = 50
PHONE_DIGITS = 8  # a phone number's last digits, the same with or without the country code
# The days the orders list can be filtered on: far wider than any sale, narrow enough that the
# day after the last one and both ends' local midnights are ordinary timestamps everywhere.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


@dataclass
class Totals:
    revenue: int = 0
    tickets: int = 0

    def add(self, amount: int) -> None:
        self.revenue += amount
        self.tickets += 1


@dataclass
class PeriodSummary:
    days: int
    total: Totals = field(default_factory=Totals)
    by_router: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    by_plan: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    by_provider: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))


@dataclass(frozen=True)
class Sale:
    day: date
    amount: int
    router: str
    plan: str
    provider: str


def local_today() -> date:
    return datetime.now(ZoneInfo(current_app.config["TIMEZONE"])).date()


def _sales(owner: Owner, since: date) -> list[Sale]:
    """Every sale of the owner since `since` (local days): online orders paid, and cash tickets."""
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    start = datetime.combine(since, datetime.min.time(), zone)
    online = db.session.execute(
        select(Order.paid_at, Order.amount, Router.name, Order.plan_label, Order.provider)
        .join(Router, Order.router_id == Router.id)
        .where(Order.owner_id == owner.id, Order.status.in_(RECEIVED), Order.paid_at >= start)
    ).all()
    cash = db.session.execute(
        select(Ticket.created_on_router_at, Ticket.price, Router.name, Ticket.plan_label)
        .join(Router, Ticket.router_id == Router.id)
        .where(Router.owner_id == owner.id, Ticket.sold_by_hand, Ticket.status == TicketStatus.CREATED,
               Ticket.created_on_router_at >= start)
    ).all()
    sales = [Sale(at.astimezone(zone).date(), amount, router, plan, provider)
             for at, amount, router, plan, provider in online]
    sales += [Sale(at.astimezone(zone).date(), price, router, plan, CASH) for at, price, router, plan in cash]
    return sales


def summaries(owner: Owner) -> list[PeriodSummary]:
    """Revenue and ticket counts for today, 7 and 30 days, per router, plan and provider."""
    today = local_today()
    sales = _sales(owner, today - timedelta(days=max(PERIODS) - 1))
    return [_summary(days, [s for s in sales if s.day > today - timedelta(days=days)]) for days in PERIODS]


def day_summary(owner: Owner, day: date) -> PeriodSummary:
    """One local day's sales, per router, plan and provider (the owner's daily email)."""
    return _summary(1, [s for s in _sales(owner, day) if s.day == day])


def _summary(days: int, sales: list[Sale]) -> PeriodSummary:
    summary = PeriodSummary(days)
    for sale in sales:
        summary.total.add(sale.amount)
        summary.by_router[sale.router].add(sale.amount)
        summary.by_plan[sale.plan].add(sale.amount)
        summary.by_provider[sale.provider].add(sale.amount)
    return summary


def daily(owner: Owner, days: int = 30) -> list[tuple[date, Totals]]:
    """Sales per local day over the last `days` days, oldest first, empty days included."""
    today = local_today()
    first = today - timedelta(days=days - 1)
    per_day: dict[date, Totals] = defaultdict(Totals)
    for sale in _sales(owner, first):
        per_day[sale.day].add(sale.amount)
    return [(first + timedelta(days=n), per_day[first + timedelta(days=n)]) for n in range(days)]


def filter_day(raw: str) -> date | None:
    """A day of the orders list's filters (`YYYY-MM-DD`), None when blank; ValueError otherwise."""
    if not raw.strip():
        return None
    day = date.fromisoformat(raw.strip())
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{day} is outside {FIRST_DAY}..{LAST_DAY}")
    return day


@dataclass(frozen=True)
class OrderFilters:
    """The orders list's filters, as the owner chose them (all optional)."""

    status: str = ""
    router_id: int | None = None
    provider: str = ""
    date_from: date | None = None
    date_to: date | None = None
    search: str = ""


def orders_query(owner: Owner, filters: OrderFilters) -> Select:
    """The owner's orders matching the filters, newest first."""
    query = select(Order).where(Order.owner_id == owner.id).order_by(Order.id.desc())
    if filters.status:
        query = query.where(Order.status == filters.status)
    if filters.router_id:
        query = query.where(Order.router_id == filters.router_id)
    if filters.provider:
        query = query.where(Order.provider == filters.provider)
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    if filters.date_from:
        query = query.where(Order.created_at >= datetime.combine(filters.date_from, datetime.min.time(), zone))
    if filters.date_to:
        end = datetime.combine(filters.date_to + timedelta(days=1), datetime.min.time(), zone)
        query = query.where(Order.created_at < end)
    if filters.search:
        term = filters.search.strip()
        matches = [Order.code == term.upper(), Order.payer_reference == term, Order.provider_ref == term,
                   Order.payer_phone.contains(term, autoescape=True)]
        digits = "".join(ch for ch in term if ch.isdigit())
        if len(digits) >= PHONE_DIGITS:  # a phone, written with or without its country code, as retrieval reads it
            matches.append(Order.payer_phone.endswith(digits[-PHONE_DIGITS:], autoescape=True))
        query = query.where(or_(*matches))
    return query


def orders_page(owner: Owner, filters: OrderFilters, page: int) -> tuple[list[Order], bool]:
    """One page of the list, and whether there is a next one."""
    rows = db.session.scalars(orders_query(owner, filters).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


CSV_COLUMNS = (_l("Commande"), _l("Créée le"), _l("Payée le"), _l("État"), _l("Routeur"), _l("Forfait"),
               _l("Montant"), _l("Devise"), _l("Paiement"), _l("Référence de paiement"), _l("Téléphone du client"),
               _l("Ticket"))


def orders_csv(owner: Owner, filters: OrderFilters) -> str:
    """The filtered orders as CSV for the spreadsheet of the page's language; cells are defused so
    that a spreadsheet never runs them as formulas.

    UTF-8 with a byte order mark (without it, Excel reads UTF-8 as the system's code page), `;`
    between cells where the decimal mark is a comma (as Excel there expects), headers and states
    in the owner's words, times in the shop's time zone.
    """
    locale = get_locale()
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";" if get_decimal_symbol(locale) == "," else ",")
    writer.writerow([str(column) for column in CSV_COLUMNS])
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    for order in db.session.scalars(orders_query(owner, filters)).yield_per(500):
        writer.writerow([_cell(v) for v in (
            order.code, _local(order.created_at, zone), _local(order.paid_at, zone),
            formatting.order_status(order.status), order.router.name, order.plan_label, order.amount, order.currency,
            formatting.provider_title(order.provider), order.payer_reference, order.payer_phone,
            order.ticket.username if order.ticket else "",
        )])
    return out.getvalue()


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment as spreadsheets read it, in the shop's time zone: 2026-01-31 18:05:00."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _cell(value) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
