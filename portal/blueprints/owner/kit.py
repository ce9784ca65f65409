"""The setup kit (router script, login.html, buttons, webhook URLs) and the imports from the guide."""

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from wtforms.widgets import PasswordInput

from portal.blueprints.owner.forms import RouterForm
from portal.blueprints.owner.routers import load_router, router_tests, too_many_tests_message
from portal.models import Router
from portal.routeros import credentials
from portal.services import accounts as account_service
from portal.services import guide_import
from portal.services import routers as router_service
from portal.services import setup_kit, tunnel

bp = Blueprint("kit", __name__)

LOGIN_PAGE_LANGUAGES = ("fr", "en")


@bp.before_request
@login_required
def require_owner():
    """Every kit page is for a signed-in owner."""


bp.add_app_template_filter(setup_kit.hotspot_html, "hotspot_html")


def _kit_page(router: Router, *, setup: setup_kit.SetupScript | None = None, error: str | None = None,
              status: int = 200):
    return render_template(
        "owner/kit/kit.html", router=router, setup=setup, error=error, pages_status=setup_kit.pages_status(router),
        go_back_lines=setup_kit.go_back_lines(router),
        pap_candidates=setup_kit.pap_candidates(router), source_address=setup_kit.source_address(),
        tunnel_hub=tunnel.hub(), tunnel_unavailable=router_service.tunnel_unavailable(router),
        plan_snippets=setup_kit.plan_snippets(router), retrieve_snippet=setup_kit.retrieve_snippet(),
        webhook_url=account_service.webhook_url,
    ), status


@bp.get("/<id:router_id>/kit")
def show(router_id: int):
    """The install page: script, login.html, buttons and webhook URLs of one router."""
    return _kit_page(load_router(router_id))


@bp.errorhandler(setup_kit.KitError)
def kit_error(exc: setup_kit.KitError):
    """A script that cannot be made or reopened as asked: say why on the kit page."""
    return _kit_page(load_router(request.view_args["router_id"]), error=str(exc), status=422)


@bp.post("/<id:router_id>/kit")
def generate(router_id: int):
    """Draw the `kiosque` user's password and show the script that creates it (once)."""
    router = load_router(router_id)
    options = setup_kit.ScriptOptions(http_pap_profiles=tuple(request.form.getlist("http_pap")),
                                      restrict_service=bool(request.form.get("restrict_service")),
                                      keep_own_pages=bool(request.form.get("keep_own_pages")))
    return _kit_page(router, setup=setup_kit.new_setup(router, options))


@bp.post("/<id:router_id>/kit/kiosque.rsc")
def download_script(router_id: int):
    """The script just shown, as a file to upload and `/import` on the router."""
    setup = setup_kit.reopen_setup(load_router(router_id), request.form.get("token", ""))
    return Response(setup.script, mimetype="text/plain",
                    headers={"Content-Disposition": "attachment; filename=kiosque.rsc", "Cache-Control": "no-store"})


@bp.errorhandler(429)
def too_many_tests(_exc):
    """Over the connection test limit (shared with the router page's test): the script stays shown."""
    router = load_router(request.view_args["router_id"])
    try:
        setup = setup_kit.reopen_setup(router, request.form.get("token", ""))
    except setup_kit.KitError:
        setup = None
    return _kit_page(router, setup=setup, error=too_many_tests_message(), status=429)


@bp.post("/<id:router_id>/kit/confirm")
@router_tests
def confirm(router_id: int):
    """The owner ran the script: Kiosque uses the `kiosque` user from now on, if the router takes it.

    Back on the kit page, which says whether the hotspot now shows Kiosque's pages.
    """
    router = load_router(router_id)
    setup = setup_kit.reopen_setup(router, request.form.get("token", ""))
    report = setup_kit.adopt_credentials(router, setup)
    if report.ok:
        flash(_("Le routeur accepte l'utilisateur « kiosque » : Kiosque l'utilise désormais."))
        return redirect(url_for("owner.kit.show", router_id=router.id, _anchor="pages-status"))
    return _kit_page(router, setup=setup, error=report.error, status=502)


@bp.get("/<id:router_id>/kit/login.html")
def login_page(router_id: int):
    """The hotspot login.html to upload to the router (French unless asked otherwise)."""
    router = load_router(router_id)
    lang = request.args.get("lang", "fr")
    if lang not in LOGIN_PAGE_LANGUAGES:
        abort(404)
    return Response(setup_kit.login_page(router, lang), mimetype="text/html",
                    headers={"Content-Disposition": "attachment; filename=login.html"})


@bp.route("/import-guide", methods=("GET", "POST"))
def import_guide():
    """Read the guide's webhook parameters into a new router form; nothing is saved here.

    The prefilled form posts back to this address, which hands it on (307 keeps the body, so the
    password never enters a URL) to the router form's own view, the only place a router is saved.
    """
    if request.method == "POST" and "guide" not in request.form:
        return redirect(url_for("owner.routers.create"), 307)
    problems: list[str] = []
    if request.method == "POST":
        try:
            settings = guide_import.parse_webhook(request.form["guide"])
        except guide_import.GuideError as exc:
            problems = exc.problems
        else:
            form = RouterForm(formdata=None, data=settings.form_data())
            form.api_password.widget = PasswordInput(hide_value=False)  # this page only, never a URL
            samples = credentials.sample(settings.user_mode, settings.name_length, settings.charset,
                                         settings.prefix)
            return render_template("owner/kit/guide_router.html", form=form, router=None, samples=samples,
                                   notes=settings.notes, tunnel_unavailable=router_service.tunnel_unavailable(None))
    return render_template("owner/kit/import_guide.html", problems=problems), 422 if problems else 200


@bp.route("/<id:router_id>/plans/import-links", methods=("GET", "POST"))
def import_links(router_id: int):
    """Propose plans from the guide's buy links; create the chosen ones."""
    router = load_router(router_id)
    if request.method == "POST" and "links" not in request.form:
        results = guide_import.import_buy_links(router, request.form.getlist("link"))
        failed = any(r.error for r in results)
        return render_template("owner/kit/import_links.html", router=router, results=results), 422 if failed else 200
    parsed, problems = None, []
    if request.method == "POST":
        try:
            parsed = guide_import.parse_buy_links(request.form["links"])
        except guide_import.GuideError as exc:
            problems = exc.problems
        else:
            problems = parsed.problems
    readable = parsed is not None and parsed.links
    return render_template("owner/kit/import_links.html", router=router, parsed=parsed, problems=problems,
                           taken={p.profile for p in router.plans}), 422 if problems and not readable else 200
