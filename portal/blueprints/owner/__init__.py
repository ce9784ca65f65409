"""Owner pages: sign-in, sales, routers, plans, payment accounts, the router kit, the owner's settings.

Every page shows the signed-in owner's own data only.
"""

from flask import Blueprint

from portal.blueprints.owner import accounts, auth, kit, plans, routers, sales, settings

bp = Blueprint("owner", __name__)
bp.register_blueprint(auth.bp)
bp.register_blueprint(sales.bp)
bp.register_blueprint(routers.bp, url_prefix="/routers")
bp.register_blueprint(plans.bp)
bp.register_blueprint(accounts.bp, url_prefix="/accounts")
bp.register_blueprint(kit.bp, url_prefix="/routers")
bp.register_blueprint(settings.bp, url_prefix="/settings")
