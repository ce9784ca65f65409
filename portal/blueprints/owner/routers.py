"""Router pages: list, settings, connection test, ticket sample, cash sale."""

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required

from portal import htmx
from portal.blueprints import positive_int
from portal.blueprints.owner import deletion
from portal.blueprints.owner.forms import RouterForm
from portal.extensions import db, limiter
from portal.models import Plan, Router, Ticket
from portal.routeros import credentials
from portal.routeros.client import RouterError
from portal.services import accounts as account_service
from portal.services import provisioning
from portal.services import routers as router_service

bp = Blueprint("routers", __name__)


@bp.before_request
@login_required
def require_owner():
    """Every router page is for a signed-in owner."""


def _router_test_limit() -> str:
    return current_app.config["ROUTER_TEST_RATE_LIMIT"]


def owner_key() -> str:
    """Rate limits count per signed-in owner (an anonymous request only gets the login page)."""
    if current_user.is_authenticated:
        return f"owner:{current_user.get_id()}"
    return get_remote_address()


# Each connection test makes the server connect where the owner said: limited per owner, the
# router page's test and the setup kit's confirmation together.
router_tests = limiter.shared_limit(_router_test_limit, scope="router-test", key_func=owner_key)


def too_many_tests_message() -> str:
    return _("Trop de tests de connexion : patientez quelques minutes avant de réessayer.")


def load_router(router_id: int) -> Router:
    router = router_service.owned_router(current_user, router_id)
    if router is None:
        abort(404)
    return router


@bp.get("/")
def index():
    """List the owner's routers with their health."""
    return render_template("owner/routers.html", routers=current_user.routers,
                           warnings_of=router_service.router_warnings)


@bp.route("/new", methods=("GET", "POST"))
def create():
    """Add a router."""
    return _edit(None)


@bp.route("/<id:router_id>/edit", methods=("GET", "POST"))
def edit(router_id: int):
    """Change a router's settings; a blank password keeps the stored one."""
    return _edit(load_router(router_id))


def _edit(router: Router | None):
    form = RouterForm(obj=router)
    if form.validate_on_submit():
        try:
            router = router_service.save_router(current_user, router, form.values(), form.api_password.data or "")
        except router_service.RouterSettingsError as exc:
            getattr(form, exc.field).errors.append(str(exc))
        else:
            return redirect(url_for(".show", router_id=router.id))
    status = 422 if form.errors else 200
    samples = _samples(form.user_mode.data, form.name_length.data, form.charset.data, form.prefix.data)
    return render_template("owner/router_form.html", form=form, router=router, samples=samples,
                           tunnel_unavailable=router_service.tunnel_unavailable(router)), status


def _samples(mode, length, charset, prefix) -> list[credentials.Credentials]:
    try:
        return credentials.sample(mode or "vc", length or 0, charset or "", prefix or "")
    except ValueError:
        return []


@bp.route("/<id:router_id>/delete", methods=("GET", "POST"))
def delete(router_id: int):
    """Delete a router with its plans, once confirmed."""
    router = load_router(router_id)
    return deletion.confirm(
        question=_("Supprimer le routeur %(name)s ?", name=router.name),
        consequence=_("Ses forfaits et la liste de ses tickets sont effacés de Kiosque. Les utilisateurs hotspot "
                      "déjà créés restent sur le routeur."),
        back=url_for(".show", router_id=router.id), done=url_for(".index"),
        refusal=router_service.deletion_refused(router), delete=lambda: router_service.delete_router(router))


@bp.get("/<id:router_id>")
def show(router_id: int):
    """A router: facts, warnings, plans, cash sale and recent tickets."""
    return _router_page(load_router(router_id))


def _router_page(router: Router, report: router_service.ConnectionReport | None = None, *, status: int = 200):
    tickets = db.session.scalars(
        db.select(Ticket).where(Ticket.router_id == router.id).order_by(Ticket.id.desc()).limit(20)
    ).all()
    return render_template("owner/router.html", router=router, tickets=tickets, report=report,
                           warnings=router_service.router_warnings(router),
                           accounts=account_service.owner_accounts(current_user)), status


@bp.post("/<id:router_id>/test")
@router_tests
def test(router_id: int):
    """Test the connection (HTMX fragment, or the router page again without JavaScript)."""
    router = load_router(router_id)
    return _test_result(router, router_service.test_connection(router))


@bp.errorhandler(429)
def too_many_tests(_exc):
    """Over the connection test limit: said where the test's answer goes."""
    router = load_router(request.view_args["router_id"])
    return _test_result(router, router_service.ConnectionReport(error=too_many_tests_message()), status=429)


def _test_result(router: Router, report: router_service.ConnectionReport, status: int = 200):
    if htmx.wants_fragment():
        return render_template("owner/_connection.html", router=router, report=report), status
    return _router_page(router, report, status=status)


@bp.get("/sample")
def sample():
    """A few codes the ticket settings would generate (HTMX fragment for the router form)."""
    args = request.args
    samples = _samples(args.get("user_mode"), args.get("name_length", type=int), args.get("charset"),
                       args.get("prefix"))
    return render_template("owner/_sample.html", samples=samples)


@bp.post("/<id:router_id>/sell")
def sell(router_id: int):
    """Sell a ticket by hand (cash): create it on the router now and show the code."""
    router = load_router(router_id)
    plan = db.session.scalar(db.select(Plan).where(Plan.id == positive_int(request.form.get("plan_id")),
                                                   Plan.router_id == router.id))
    if plan is None:
        abort(404)
    return _sale_result(router, lambda: provisioning.sell_by_hand(router, plan))


@bp.post("/<id:router_id>/tickets/<id:ticket_id>/retry")
def retry(router_id: int, ticket_id: int):
    """Try again to create a ticket the router did not take."""
    router = load_router(router_id)
    ticket = db.session.scalar(db.select(Ticket).where(Ticket.id == ticket_id, Ticket.router_id == router.id))
    if ticket is None:
        abort(404)
    return _sale_result(router, lambda: provisioning.provision_ticket(ticket))


def _sale_result(router: Router, make_ticket):
    error, ticket = None, None
    try:
        ticket = make_ticket()
    except RouterError as exc:
        error = router_service.describe_router_error(exc)
    return htmx.render("owner/sale.html", "owner/_sale.html", 200 if error is None else 502,
                       router=router, ticket=ticket, error=error)
