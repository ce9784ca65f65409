"""Owner pages: sign-in, routers, plans. Every page is the signed-in owner's own data only."""

from flask import Blueprint, redirect, url_for
from flask_login import login_required

from portal.blueprints.owner import auth, plans, routers

bp = Blueprint("owner", __name__)
bp.register_blueprint(auth.bp)
bp.register_blueprint(routers.bp, url_prefix="/routers")
bp.register_blueprint(plans.bp)


@bp.get("/")
@login_required
def home():
    """The owner's start page is the router list."""
    return redirect(url_for("owner.routers.index"))
