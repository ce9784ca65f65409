"""Sales pages: the dashboard, the orders list with its filters and export, one order's timeline."""

from datetime import date

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from portal.blueprints import positive_int
from portal.extensions import db
from portal.models import Order, OrderStatus
from portal.payments import PROVIDERS
from portal.services import dashboard, provisioning

bp = Blueprint("sales", __name__)


@bp.before_request
@login_required
def require_owner():
    """Every sales page is for a signed-in owner."""


@bp.get("/")
def overview():
    """Today, 7 and 30 days at a glance, and a chart of daily sales."""
    days = dashboard.daily(current_user)
    return render_template("owner/dashboard.html", summaries=dashboard.summaries(current_user), days=days,
                           top=max((t.revenue for _, t in days), default=0))


def _filters() -> dashboard.OrderFilters:
    args = request.args

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(args.get(name, ""))
        except ValueError:
            return None

    status = args.get("status", "")
    provider = args.get("provider", "")
    return dashboard.OrderFilters(
        status=status if status in set(OrderStatus) else "",
        router_id=positive_int(args.get("router_id")),
        provider=provider if provider in PROVIDERS else "",
        date_from=day("from"), date_to=day("to"), search=args.get("q", "")[:120],
    )


@bp.get("/orders/")
def order_list():
    """The orders, filtered by status, router, provider, dates, or a code, reference or phone."""
    page = positive_int(request.args.get("page")) or 1
    rows, more = dashboard.orders_page(current_user, _filters(), page)
    return render_template("owner/orders.html", orders=rows, more=more, page=page, filters=_filters(),
                           statuses=list(OrderStatus), providers=PROVIDERS)


@bp.get("/orders.csv")
def export():
    """The filtered orders as a CSV file."""
    body = dashboard.orders_csv(current_user, _filters())
    return Response(body, mimetype="text/csv",
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
