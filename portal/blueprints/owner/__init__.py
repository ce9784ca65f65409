"""Owner pages: sign-in, routers, plans, payment accounts. Every page shows the owner's own data only."""

from flask import Blueprint, redirect, url_for
from flask_login import login_required

from portal.blueprints.owner import accounts, auth, kit, plans, routers

bp = Blueprint("owner", __name__)
bp.register_blueprint(auth.bp)
bp.register_blueprint(routers.bp, url_prefix="/routers")
bp.register_blueprint(plans.bp)
bp.register_blueprint(accounts.bp, url_prefix="/accounts")
bp.register_blueprint(kit.bp, url_prefix="/routers")


@bp.get("/")
@login_required
def home():
    """The owner's start page is the router list."""
    return redirect(url_for("owner.routers.index"))
