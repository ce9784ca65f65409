"""The steps from a new account to the first sale, for the sales page to show until that sale."""

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, select

from portal.extensions import db
from portal.models import Order, Owner, Router, Ticket
from portal.services.dashboard import RECEIVED
from portal.services.setup_kit import API_USER


@dataclass(frozen=True)
class Step:
    text: str
    done: bool
    endpoint: str  # where the owner does it
    router_id: int | None = None  # for a router's page: the first router (no link before there is one)

    @property
    def reachable(self) -> bool:
        return self.router_id is not None or self.endpoint in ("owner.routers.create", "owner.accounts.index")


def first_steps(owner: Owner) -> list[Step] | None:
    """What is done and what is left before the first sale; None once the owner has sold."""
    sold = db.session.scalar(select(exists().where(Order.owner_id == owner.id, Order.status.in_(RECEIVED)))) \
        or db.session.scalar(select(exists().where(Ticket.sold_by_hand, Ticket.router_id.in_(
            select(Router.id).where(Router.owner_id == owner.id)))))
    if sold:
        return None
    routers = owner.routers
    first = routers[0].id if routers else None
    tested = any(r.last_contact_at for r in routers)
    return [
        Step(_l("Ajouter le routeur"), bool(routers), "owner.routers.create"),
        Step(_l("Tester la connexion"), tested, "owner.routers.show", first),
        Step(_l("Créer les forfaits"), any(p.active for r in routers for p in r.plans), "owner.routers.show", first),
        Step(_l("Ajouter un compte de paiement et le proposer sur le routeur"),
             any(r.offered_accounts for r in routers), "owner.accounts.index"),
        Step(_l("Installer Kiosque sur le routeur (script et login.html)"),
             any(r.api_username == API_USER for r in routers), "owner.kit.show", first),
        Step(_l("Faire un achat d'essai"), False, "owner.routers.show", first),
    ]
