"""Plan pages: add, change, delete, import from the router's Mikhmon profiles."""

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from wtforms.fields.choices import SelectChoice

from portal.blueprints.owner import deletion
from portal.blueprints.owner.forms import PlanForm
from portal.blueprints.owner.routers import load_router
from portal.models import Plan, Router
from portal.routeros import units
from portal.services import plans as plan_service

bp = Blueprint("plans", __name__)


@bp.before_request
@login_required
def require_owner():
    """Every plan page is for a signed-in owner."""


def load_plan(plan_id: int) -> Plan:
    plan = plan_service.owned_plan(current_user, plan_id)
    if plan is None:
        abort(404)
    return plan


@bp.route("/routers/<id:router_id>/plans/new", methods=("GET", "POST"))
def create(router_id: int):
    """Add a plan to a router."""
    router = load_router(router_id)
    return _edit(router, None)


@bp.route("/plans/<id:plan_id>/edit", methods=("GET", "POST"))
def edit(plan_id: int):
    """Change a plan."""
    plan = load_plan(plan_id)
    return _edit(plan.router, plan)


def _edit(router: Router, plan: Plan | None):
    form = PlanForm(obj=plan, currency=router.currency)
    # No profile chosen for the owner: "default" first in the list would be picked without a look.
    form.profile.choices = [SelectChoice("", _("Choisissez un profil"))] + [SelectChoice(n) for n in router.profile_names]
    if plan is not None and request.method == "GET":
        form.data_limit.data = units.format_bytes(plan.data_limit_bytes)
    if form.validate_on_submit():
        try:
            plan_service.save_plan(router, plan, form.values())
        except plan_service.PlanError as exc:
            getattr(form, exc.field).errors.append(str(exc))
        else:
            return redirect(url_for("owner.routers.show", router_id=router.id))
    status = 422 if form.errors else 200
    return render_template("owner/plan_form.html", form=form, router=router, plan=plan), status


@bp.route("/plans/<id:plan_id>/delete", methods=("GET", "POST"))
def delete(plan_id: int):
    """Delete a plan once confirmed; tickets already sold keep their plan's name and price."""
    plan = load_plan(plan_id)
    return deletion.confirm(
        question=_("Supprimer le forfait %(name)s ?", name=plan.label),
        consequence=_("Il disparaît de la page d'achat. Les tickets déjà vendus gardent son nom et son prix."),
        back=url_for(".edit", plan_id=plan.id), done=url_for("owner.routers.show", router_id=plan.router_id),
        refusal=None, delete=lambda: plan_service.delete_plan(plan))


@bp.route("/routers/<id:router_id>/plans/import", methods=("GET", "POST"))
def import_profiles(router_id: int):
    """Propose plans from the router's Mikhmon profiles; create the chosen ones."""
    router = load_router(router_id)
    if request.method == "POST":
        plan_service.import_plans(router, request.form.getlist("profile"))
        return redirect(url_for("owner.routers.show", router_id=router.id))
    return render_template("owner/plans_import.html", router=router, proposals=plan_service.propose_plans(router))
