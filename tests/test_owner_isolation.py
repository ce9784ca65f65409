"""An owner sees and changes only their own routers, plans, tickets, accounts and orders."""

from portal.extensions import db
from portal.models import Order, OrderStatus, PaymentAccount, Plan, Router, Ticket
from portal.services import owners

from tests.conftest import page_text


def other_owners_objects(router_server) -> dict[str, int]:
    other = owners.create_owner("other@example.com", "other-password")
    router = Router(owner=other, name="Autre", host=router_server.host, port=router_server.port,
                    api_username="admin", api_password="x")
    plan = Plan(router=router, label="1h", profile="1h", price=100)
    db.session.add_all([router, plan])
    db.session.flush()
    ticket = Ticket(router=router, plan_id=plan.id, plan_label="1h", price=100, username="kqz7wx",
                    password="kqz7wx", profile="1h", server="all", comment="vc-123-01.01.26-x")
    account = PaymentAccount(owner=other, provider="fedapay", label="Autre", credentials="{}")
    db.session.add_all([ticket, account])
    router.accounts.append(account)
    order = Order(intent="other", owner_id=other.id, router=router, account=account, provider="fedapay",
                  plan_label="1h", profile="1h", amount=100, currency="XOF", status=OrderStatus.PAID)
    db.session.add(order)
    db.session.commit()
    return {"router_id": router.id, "plan_id": plan.id, "ticket_id": ticket.id, "account_id": account.id,
            "order_id": order.id}


def test_every_owner_route_answers_404_for_another_owners_ids(app, browser, router_server):
    ids = other_owners_objects(router_server)
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("owner.") or not rule.arguments & set(ids):
            continue
        url = rule.build({name: ids[name] for name in rule.arguments}, append_unknown=False)[1]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            data = {"plan_id": ids["plan_id"], "profile": "1h", "label": "x", "price": "1"}
            response = browser.get(url) if method == "GET" else browser.post(url, data)
            assert response.status_code == 404, (method, url, response.status_code)
            checked += 1
    assert checked >= 20
    # Nothing of the other owner's changed.
    assert db.session.get(Router, ids["router_id"]).name == "Autre"
    assert db.session.get(Plan, ids["plan_id"]) is not None
    assert db.session.get(PaymentAccount, ids["account_id"]).label == "Autre"
    assert db.session.get(Order, ids["order_id"]).attempts == 0  # no retry was made
    assert router_server.users() == []


def test_lists_show_only_own_things(app, browser, router_server):
    other_owners_objects(router_server)
    for path in ("/owner/routers/", "/owner/accounts/", "/owner/orders/", "/owner/", "/owner/orders.csv"):
        assert "Autre" not in page_text(browser.get(path)), path
