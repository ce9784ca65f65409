"""Valid rows with sensible defaults, for tests that need a database and nothing else.

Each function adds what it makes to the session and commits; keyword arguments override the
defaults. Routers point at a documentation address (192.0.2.10) unless a test passes a sandbox
router's host and port.
"""

import itertools
import json

from portal.extensions import db
from portal.models import Order, OrderStatus, Owner, PaymentAccount, Plan, Router
from portal.services import owners

_numbers = itertools.count(1)


def make_owner(email: str | None = None, password: str = "owner-password") -> Owner:
    return owners.create_owner(email or f"owner{next(_numbers)}@example.com", password)


def make_router(owner: Owner | None = None, **values) -> Router:
    router = Router(**{"owner": owner or make_owner(), "name": f"Routeur {next(_numbers)}", "host": "192.0.2.10",
                       "api_username": "admin", "api_password": "router-password", **values})
    db.session.add(router)
    db.session.commit()
    return router


def make_plan(router: Router, **values) -> Plan:
    plan = Plan(**{"router": router, "label": f"Forfait {next(_numbers)}", "profile": "1h", "price": 200,
                   "time_limit": "1h", **values})
    db.session.add(plan)
    db.session.commit()
    return plan


def make_account(owner: Owner, provider: str = "fedapay", *, offered_on: Router | None = None,
                 **values) -> PaymentAccount:
    account = PaymentAccount(**{"owner": owner, "provider": provider, "label": provider,
                                "credentials": json.dumps({}), **values})
    db.session.add(account)
    if offered_on is not None:
        offered_on.accounts.append(account)
    db.session.commit()
    return account


def make_kit_router(**values) -> Router:
    """A router as the setup kit reads it: a hotspot profile it knows, FedaPay, CinetPay and FeexPay
    offered live, read back as a page reads it (accounts in the database's order)."""
    owner = make_owner("kit@example.com", "kit-password")
    router = make_router(owner, **{"name": "Maquis", "port": 8728, "api_password": "old-secret", "facts": {
        "server_profiles": [{"name": "hsprof1", "dns_name": "wifi.net", "login_by": "cookie,http-chap"}]}, **values})
    for provider in ("fedapay", "cinetpay", "feexpay"):
        make_account(owner, provider, offered_on=router, environment="live", credentials="{}")
    db.session.expire_all()
    return router


def make_order(router: Router | None = None, *, status: OrderStatus = OrderStatus.PENDING, **values) -> Order:
    """An order for the router's first plan (made if needed), through an account it offers."""
    router = router or make_router()
    plan = router.plans[0] if router.plans else make_plan(router)
    account = router.accounts[0] if router.accounts else make_account(router.owner, offered_on=router)
    number = next(_numbers)
    order = Order(**{
        "intent": f"intent-{number}", "owner_id": router.owner_id, "router": router, "plan_id": plan.id,
        "account": account, "provider": account.provider, "plan_label": plan.label, "profile": plan.profile,
        "time_limit": plan.time_limit, "amount": plan.price, "currency": plan.currency, "status": status,
        "provider_ref": f"ref-{number}", **values})
    db.session.add(order)
    db.session.commit()
    return order
