"""Sales pages: the dashboard, the orders list with its filters and export, one order's timeline."""

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from portal.blueprints import positive_int
from portal.extensions import db
from portal.models import Order, OrderStatus
from portal.payments import PROVIDERS
from portal.services import dashboard, provisioning
from portal.services.first_steps import first_steps

bp = Blueprint("sales", __name__)


@bp.before_request
@login_required
def require_owner():
    """Every sales page is for a signed-in owner."""


@bp.get("/")
def overview():
    """Today, 7 and 30 days at a glance, one of them in detail, a chart of daily sales; the steps left
    until the first sale."""
    days = dashboard.daily(current_user)
    summaries = dashboard.summaries(current_user)
    chosen = next((s for s in summaries if s.days == request.args.get("days", type=int)), summaries[0])
    return render_template("owner/dashboard.html", summaries=summaries, chosen=chosen, days=days,
                           top=max((t.revenue for _, t in days), default=0), steps=first_steps(current_user))


def _filters() -> tuple[dashboard.OrderFilters, str | None]:
    """The filters the query asks for, and what is wrong with its dates (None when nothing is).

    Unknown statuses, providers and routers are ignored; a date that is not a day the list can
    filter on is an error, rather than a filter silently dropped.
    """
    args = request.args
    days, error = {}, None
    for name in ("from", "to"):
        try:
            days[name] = dashboard.filter_day(args.get(name, ""))
        except ValueError:
            days[name] = None
            error = _("Date non valide : choisissez un jour entre le %(first)s et le %(last)s.",
                      first=format_date(dashboard.FIRST_DAY), last=format_date(dashboard.LAST_DAY))
    status = args.get("status", "")
    provider = args.get("provider", "")
    filters = dashboard.OrderFilters(
        status=status if status in set(OrderStatus) else "",
        router_id=positive_int(args.get("router_id")),
        provider=provider if provider in PROVIDERS else "",
        date_from=days["from"], date_to=days["to"], search=args.get("q", "")[:120],
    )
    return filters, error


@bp.get("/orders/")
def order_list():
    """The orders, filtered by status, router, provider, dates, or a code, reference or phone."""
    page = positive_int(request.args.get("page")) or 1
    filters, error = _filters()
    rows, more = ([], False) if error else dashboard.orders_page(current_user, filters, page)
    return render_template("owner/orders.html", orders=rows, more=more, page=page, filters=filters, error=error,
                           first_day=dashboard.FIRST_DAY, last_day=dashboard.LAST_DAY,
                           statuses=list(OrderStatus), providers=PROVIDERS), 400 if error else 200


@bp.get("/orders.csv")
def export():
    """The filtered orders as a CSV file."""
    filters, error = _filters()
    if error:
        return render_template("errors/error.html", code=400, message=error), 400
    body = dashboard.orders_csv(current_user, filters)
    return Response(body, content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=kiosque-orders.csv"})


def load_order(order_id: int) -> Order:
    order = db.session.scalar(select(Order).where(Order.id == order_id, Order.owner_id == current_user.id))
    if order is None:
        abort(404)
    return order


@bp.get("/orders/<id:order_id>")
def order_detail(order_id: int):
    """One order and its timeline."""
    return render_template("owner/order.html", order=load_order(order_id))


@bp.post("/orders/<id:order_id>/retry")
def retry(order_id: int):
    """Try to make a paid order's ticket now."""
    provisioning.retry_now(load_order(order_id))
    return redirect(url_for(".order_detail", order_id=order_id))
