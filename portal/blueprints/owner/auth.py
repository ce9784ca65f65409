"""Owner sign-in and sign-out."""

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import login_required, login_user, logout_user

from portal.blueprints.owner.forms import LoginForm
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
            return redirect(url_for("owner.sales.overview"))
        error = _("E-mail ou mot de passe incorrect.")
    return render_template("owner/login.html", form=form, error=error), 200 if error is None else 401


@bp.post("/logout")
@login_required
def logout():
    """Sign the owner out."""
    logout_user()
    return redirect(url_for("owner.auth.login"))
