"""The owner's settings page: name, language, sale emails, email address, password, and the
settings file (routers, plans, payment accounts) to download or upload, never with secrets."""

import json

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user

from portal.blueprints.owner.forms import EmailChangeForm, PasswordChangeForm, ProfileForm
from portal.extensions import limiter
from portal.models import SaleEmail
from portal.services import owners, settings_file

bp = Blueprint("settings", __name__)


def _account_change_limit() -> str:
    return current_app.config["ACCOUNT_CHANGE_RATE_LIMIT"]


def _owner_id() -> str:
    return f"owner:{current_user.id}"  # not the session id: a password change gives that a new version


# A session left open on a shared phone must not let anyone guess the password it asks for, nor
# send link after link: counted per owner, the two forms together.
account_changes = limiter.shared_limit(_account_change_limit, scope="account-change", key_func=_owner_id)


@bp.before_request
def require_owner():
    """Every settings page is for a signed-in owner, but the link confirming a new address."""
    if request.endpoint != "owner.settings.confirm_email" and not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()


def _page(status: int = 200, **context):
    """The page, with blank forms but those given (kept with their errors) and any other context."""
    owner = current_user
    forms = context
    forms.setdefault("profile", ProfileForm(data={"name": owner.name, "locale": owner.locale,
                                                  "sale_email": owner.sale_email.value}, formdata=None))
    forms.setdefault("email", EmailChangeForm(prefix="email", formdata=None))
    forms.setdefault("password", PasswordChangeForm(prefix="password", formdata=None))
    return render_template("owner/settings.html", **context), status


@bp.get("/")
def show():
    """The settings page."""
    return _page()


@bp.post("/profile")
def profile():
    """Name, language of the emails, one email per sale or a daily summary."""
    form = ProfileForm()
    if not form.validate_on_submit():
        return _page(422, profile=form)
    owners.update_profile(current_user, form.name.data or "", form.locale.data, SaleEmail(form.sale_email.data))
    flash(_("Réglages enregistrés."))
    return redirect(url_for(".show"))


@bp.errorhandler(429)
def too_many_changes(_error):
    """The page again, saying to wait, rather than the bare error page."""
    return _page(429, limit_error=_("Trop de tentatives de changement d'adresse ou de mot de passe : réessayez "
                                    "dans une heure."))


@bp.post("/email")
@account_changes
def email():
    """Send a confirmation link to the new address; the address changes when it is opened."""
    form = EmailChangeForm(prefix="email")
    if form.validate_on_submit():
        try:
            address = owners.request_email_change(current_user, form.email.data, form.current_password.data)
        except owners.SettingsError as exc:
            form[exc.field].errors.append(str(exc))
        else:
            flash(_("Un lien de confirmation vient de partir vers %(email)s. Votre adresse change quand vous "
                    "l'ouvrez (il sert une fois, pendant 24 heures).", email=address))
            return redirect(url_for(".show"))
    return _page(422, email=form)


@bp.get("/email/confirm/<token>")
def confirm_email(token: str):
    """The link sent to the new address: it becomes the account's."""
    owner = owners.confirm_email_change(token)
    if owner is None:
        response = current_app.make_response((render_template("owner/email_link_invalid.html"), 400))
    else:
        flash(_("Votre adresse est maintenant %(email)s.", email=owner.email))
        response = redirect(url_for(".show") if current_user.is_authenticated else url_for("owner.auth.login"))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.post("/password")
@account_changes
def password():
    """A new password: every other session ends, this one goes on."""
    form = PasswordChangeForm(prefix="password")
    if form.validate_on_submit():
        owner = current_user._get_current_object()
        try:
            owners.change_password(owner, form.current_password.data, form.password.data)
        except owners.SettingsError as exc:
            form[exc.field].errors.append(str(exc))
        else:
            login_user(owner)  # the new session version: signed out everywhere but here
            flash(_("Mot de passe changé. Vos autres sessions sont fermées."))
            return redirect(url_for(".show"))
    return _page(422, password=form)


@bp.get("/export")
def export():
    """The settings file: routers, plans, payment accounts, without any secret."""
    document = settings_file.export_settings(current_user)
    return Response(json.dumps(document, ensure_ascii=False, indent=2), mimetype="application/json",
                    headers={"Content-Disposition": "attachment; filename=kiosque-settings.json",
                             "Cache-Control": "no-store"})


@bp.post("/import")
def upload():
    """Bring in a settings file: all of it or nothing; secrets are never taken from the page."""
    upload = request.files.get("settings")
    try:
        if upload is None or not upload.filename:
            raise settings_file.SettingsFileError(_("Choisissez le fichier de réglages à importer."))
        document = settings_file.read_document(upload.read())
        report = settings_file.import_settings(current_user, document, secrets_passphrase=None, from_owner_page=True)
    except settings_file.SettingsFileError as exc:
        return _page(422, import_error=str(exc))
    return _page(report=report)
