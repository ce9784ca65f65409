"""Owner sign-in and sign-out, and a new password by email for owners who forgot theirs."""

import hashlib
import hmac

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from portal.blueprints.owner.forms import ForgotPasswordForm, LoginForm, NewPasswordForm
from portal.extensions import limiter
from portal.services import owners

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=("GET", "POST"))
@limiter.limit(_login_limit, methods=["POST"])
def login():
    """Show the sign-in form; sign the owner in."""
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        owner = owners.authenticate(form.email.data, form.password.data)
        if owner is not None:
            login_user(owner)
            session.permanent = True  # ends after PERMANENT_SESSION_LIFETIME without a visit
            return redirect(url_for("owner.sales.overview"))
        error = _("E-mail ou mot de passe incorrect.")
    return render_template("owner/login.html", form=form, error=error), 200 if error is None else 401


@bp.post("/logout")
@login_required
def logout():
    """Sign the owner out, everywhere: a copy of the session cookie kept from before stops working."""
    owners.end_sessions(current_user._get_current_object())
    logout_user()
    return redirect(url_for("owner.auth.login"))


# -- a forgotten password ---------------------------------------------------------------------------


def _reset_limit() -> str:
    return current_app.config["PASSWORD_RESET_RATE_LIMIT"]


def _reset_email_limit() -> str:
    return current_app.config["PASSWORD_RESET_EMAIL_RATE_LIMIT"]


def _asked_email() -> str:
    """The address a reset is asked for, as a limit key (keyed digest: limit keys may be logged)."""
    email = request.form.get("email", "").strip().lower()
    return hmac.new(current_app.secret_key.encode(), email.encode(), hashlib.sha256).hexdigest()[:32]


@bp.route("/password/forgot", methods=("GET", "POST"))
@limiter.limit(_reset_limit, methods=["POST"])
@limiter.limit(_reset_email_limit, methods=["POST"], key_func=_asked_email,
               exempt_when=lambda: not request.form.get("email", "").strip())
def forgot_password():
    """Ask for a reset link by email; the same answer whether an owner has the address or not."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        owners.request_password_reset(form.email.data)
        return render_template("owner/password_sent.html", email=form.email.data.strip())
    return render_template("owner/password_forgot.html", form=form), 422 if form.errors else 200


@bp.route("/password/reset/<token>", methods=("GET", "POST"))
def reset_password(token: str):
    """Choose a new password from the emailed link; every other session of the owner ends."""
    owner = owners.owner_for_reset_token(token)
    if owner is None:
        response = current_app.make_response((render_template("owner/password_link_invalid.html"), 400))
        return _private(response)
    form = NewPasswordForm()
    if form.validate_on_submit():
        owners.set_password(owner, form.password.data)
        if current_user.is_authenticated:
            logout_user()
        flash(_("Votre mot de passe a été changé. Connectez-vous avec le nouveau."))
        return redirect(url_for("owner.auth.login"))
    response = current_app.make_response(
        (render_template("owner/password_reset.html", form=form, owner=owner), 422 if form.errors else 200))
    return _private(response)


def _private(response):
    """The reset page's address is a key: kept out of caches and of the Referer of any link."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
