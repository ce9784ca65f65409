from portal.cli import DEMO_EMAIL, DEMO_PLANS, seed_demo
from portal.extensions import db
from portal.models import Plan, Router
from portal.sandbox.routeros import SandboxRouter
from portal.services import owners, provisioning


def test_demo_seed_is_ready_to_sell_and_follows_the_sandbox_port(app):
    with SandboxRouter(password="first") as first:
        router = seed_demo(first.host, first.port, "first", hotspot_url="127.0.0.1:5000/sandbox/hotspot")
        assert router.identity == "Kiosque-Sandbox" and router.dns_name == "127.0.0.1:5000/sandbox/hotspot"
        assert sorted(a.provider for a in router.accounts) == ["cinetpay", "fedapay", "feexpay"]
        plan = db.session.scalar(db.select(Plan).where(Plan.label == DEMO_PLANS[0][0]))
        provisioning.sell_by_hand(router, plan)
        assert len(first.users()) == 1
    with SandboxRouter(password="second") as second:
        again = seed_demo(second.host, second.port, "second", hotspot_url="127.0.0.1:5000/sandbox/hotspot")
        assert again.id == router.id and again.port == second.port and again.api_password == "second"
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 1
    assert db.session.scalar(db.select(db.func.count(Plan.id))) == len(DEMO_PLANS)
    assert owners.find_owner(DEMO_EMAIL) is not None
