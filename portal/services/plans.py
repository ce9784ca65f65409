"""Plans: what a router sells, at which price, with which Mikhmon profile and limits."""

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select

from portal.extensions import db
from portal.models import Owner, Plan, Router
from portal.routeros import mikhmon, units

EDITABLE_FIELDS = ("label", "profile", "price", "currency", "time_limit", "data_limit_bytes", "active", "position")


class PlanError(ValueError):
    """The plan cannot be saved; `field` names the form field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PlanProposal:
    """A plan read from a Mikhmon user profile, for the owner to accept or not."""

    profile: str
    price: int  # what buyers would pay: Mikhmon's selling price, else its price
    validity: str
    plan_price: int | None  # the price of the plan this router already has on the profile
    label: str  # the plan's name, in words buyers read ("1 heure" for a profile "1h")
    mikhmon_price: int
    mikhmon_selling_price: int

    @property
    def exists(self) -> bool:
        return self.plan_price is not None

    @property
    def price_differs(self) -> bool:
        return self.exists and self.plan_price != self.price

    @property
    def proposed(self) -> bool:
        """Ticked at first: new, and with a validity (an imported plan has no time limit of its own,
        so a profile without one would sell tickets that never end)."""
        return not self.exists and bool(self.validity)


# A profile named after a duration gets a plan name in words, in the largest whole unit.
LABEL_UNITS = ((7 * 86400, "semaine", "semaines"), (86400, "jour", "jours"), (3600, "heure", "heures"),
               (60, "minute", "minutes"))


def buyer_label(profile: str) -> str:
    """"1 heure" for a profile named "1h", "2 jours" for "2d"; any other name as it is."""
    try:
        seconds = units.parse_duration(profile)
    except ValueError:
        return profile
    for size, one, many in LABEL_UNITS:
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {one if count == 1 else many}"
    return profile


def owned_plan(owner: Owner, plan_id: int) -> Plan | None:
    return db.session.scalar(
        select(Plan).join(Router).where(Plan.id == plan_id, Router.owner_id == owner.id)
    )


def check_profile(router: Router, profile: str) -> None:
    """A plan must name a user profile the router has (as of the last connection test)."""
    if not router.facts:
        raise PlanError("profile", _("Testez d'abord la connexion du routeur pour charger ses profils."))
    if profile not in router.profile_names:
        raise PlanError("profile", _("Le routeur n'a pas de profil « %(name)s ».", name=profile))


def save_plan(router: Router, plan: Plan | None, values: dict) -> Plan:
    """Create or update a plan from validated form values."""
    check_profile(router, values["profile"])
    clash = db.session.scalar(select(Plan.id).where(Plan.router_id == router.id, Plan.label == values["label"]))
    if clash is not None and (plan is None or clash != plan.id):
        raise PlanError("label", _("Ce routeur a déjà un forfait avec ce nom."))
    if plan is None:
        plan = Plan(router=router)
        db.session.add(plan)
    for name in EDITABLE_FIELDS:
        setattr(plan, name, values[name])
    db.session.commit()
    return plan


def delete_plan(plan: Plan) -> None:
    db.session.delete(plan)
    db.session.commit()


def propose_plans(router: Router) -> list[PlanProposal]:
    """One proposal per Mikhmon profile whose on-login header carries a price."""
    prices = {p.profile: p.price for p in router.plans}
    proposals = []
    for profile in router.facts.get("user_profiles", []):
        meta = mikhmon.parse_on_login(profile["on_login"])
        if meta is None or meta.sale_price <= 0:
            continue
        proposals.append(PlanProposal(
            profile["name"], meta.sale_price, meta.validity, prices.get(profile["name"]),
            label=buyer_label(profile["name"]), mikhmon_price=meta.price, mikhmon_selling_price=meta.selling_price))
    return proposals


def import_plans(router: Router, profiles: list[str]) -> list[Plan]:
    """Create a plan for each chosen Mikhmon profile that has none yet."""
    chosen = [p for p in propose_plans(router) if p.profile in profiles and not p.exists]
    labels = {p.label for p in router.plans}
    created = []
    for position, proposal in enumerate(chosen, start=len(router.plans)):
        label = proposal.label if proposal.label not in labels else f"{proposal.label} ({proposal.price})"
        label = label[:60]
        labels.add(label)
        plan = Plan(
            router=router, label=label, profile=proposal.profile, price=proposal.price,
            currency=router.currency, validity=proposal.validity, position=position,
        )
        db.session.add(plan)
        created.append(plan)
    db.session.commit()
    return created
