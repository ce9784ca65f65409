import re

import pytest

from portal.extensions import db
from portal.models import Plan, Router, Ticket, TicketStatus
from portal.routeros.client import RouterError
from portal.services import owners, provisioning
from portal.services import routers as router_service
from tests.conftest import ROUTER_PASSWORD, page_text

COMMENT = re.compile(r"^(vc|up)-[1-9]\d\d-\d\d\.\d\d\.\d\d-[A-Za-z0-9]+$")


@pytest.fixture
def router(app, router_server) -> Router:
    owner = owners.create_owner("seller@example.com", "seller-password")
    router = Router(owner=owner, name="Maquis", host=router_server.host, port=router_server.port,
                    api_username="admin", api_password=ROUTER_PASSWORD)
    db.session.add(router)
    db.session.commit()
    assert router_service.test_connection(router).ok
    return router


@pytest.fixture
def plan(router) -> Plan:
    plan = Plan(router=router, label="1 jour", profile="1d", price=500, time_limit="1d",
                data_limit_bytes=1073741824)
    db.session.add(plan)
    db.session.commit()
    return plan


def test_cash_sale_creates_a_mikhmon_shaped_user(router, plan, router_server):
    ticket = provisioning.sell_by_hand(router, plan)
    assert ticket.status == TicketStatus.CREATED and ticket.router_user_id.startswith("*")
    [user] = router_server.users()
    assert user["name"] == ticket.username == user["password"]  # vc mode
    assert re.fullmatch(r"[a-z]{3}[2-9]{3}", ticket.username)
    assert user["profile"] == "1d" and user["server"] == "all"
    assert user["limit-uptime"] == "1d" and user["limit-bytes-total"] == "1073741824"
    assert COMMENT.match(user["comment"]) and user["comment"] == ticket.comment


def test_up_mode_and_prefix(router, plan, router_server):
    router.user_mode, router.charset, router.prefix, router.name_length = "up", "mix1", "KQ", 5
    db.session.commit()
    ticket = provisioning.sell_by_hand(router, plan)
    [user] = router_server.users()
    assert re.fullmatch(r"KQ[2-9A-Z]{5}", user["name"]) and re.fullmatch(r"[2-9]{5}", user["password"])
    assert user["comment"].startswith("up-") and ticket.password == user["password"]


def test_retry_after_the_router_took_the_user_but_we_did_not_record_it(router, plan, router_server):
    ticket = provisioning.new_ticket(router, provisioning.Sale.of_plan(plan), tag="order42")
    db.session.commit()  # the credentials are saved before the router hears them
    # The router got the user, then the process died before its commit.
    client = provisioning._client(router)
    client.add_user(name=ticket.username, password=ticket.password, profile=ticket.profile,
                    comment=ticket.comment)
    provisioning.provision_ticket(ticket)
    assert ticket.status == TicketStatus.CREATED
    assert [u["name"] for u in router_server.users()] == [ticket.username]


def test_a_name_taken_by_someone_else_is_drawn_again(router, plan, router_server, monkeypatch):
    drawn = iter(["abc234", "abc234", "def567"])
    monkeypatch.setattr(provisioning.credentials, "generate",
                        lambda *a: provisioning.credentials.Credentials(next(drawn), "same"))
    client = provisioning._client(router)
    client.add_user(name="abc234", password="theirs", profile="1h", comment="vc-111-01.01.26-")
    ticket = provisioning.new_ticket(router, provisioning.Sale.of_plan(plan), tag="order43")
    db.session.commit()  # the credentials are saved before the router hears them
    assert ticket.username == "abc234"
    provisioning.provision_ticket(ticket)
    assert ticket.username == "def567" and ticket.status == TicketStatus.CREATED
    theirs = [u for u in router_server.users() if u["name"] == "abc234"]
    assert theirs[0]["password"] == "theirs"  # untouched


def test_a_name_one_of_our_tickets_has_is_drawn_again_before_the_router_hears_it(router, plan, monkeypatch):
    drawn = iter(["abc234", "abc234", "abc234", "def567"])
    monkeypatch.setattr(provisioning.credentials, "generate",
                        lambda *a: provisioning.credentials.Credentials(next(drawn), "same"))
    first = provisioning.new_ticket(router, provisioning.Sale.of_plan(plan), tag="order46")
    second = provisioning.new_ticket(router, provisioning.Sale.of_plan(plan), tag="order47")
    db.session.commit()
    assert (first.username, second.username) == ("abc234", "def567")
    assert second.comment.endswith("-order47") and second.password == "same"
    assert db.session.scalar(db.select(db.func.count()).select_from(Ticket)) == 2


def test_a_name_space_used_up_is_a_clear_error_and_writes_nothing(router, plan, monkeypatch):
    provisioning.new_ticket(router, provisioning.Sale.of_plan(plan), tag="order48")
    db.session.commit()
    taken = db.session.scalar(db.select(Ticket.username))
    monkeypatch.setattr(provisioning.credentials, "generate",
                        lambda *a: provisioning.credentials.Credentials(taken, "same"))
    with pytest.raises(provisioning.NameCollisions, match="too few names"):
        provisioning.new_ticket(router, provisioning.Sale.of_plan(plan), tag="order49")
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count()).select_from(Ticket)) == 1


def test_router_down_leaves_the_ticket_pending_then_retry_creates_it_once(router, plan, router_server):
    router_server.mode = "refuse"
    with pytest.raises(RouterError) as raised:
        provisioning.sell_by_hand(router, plan)
    assert ROUTER_PASSWORD not in str(raised.value)
    ticket = db.session.scalar(db.select(Ticket))
    assert ticket.status == TicketStatus.PENDING and ticket.attempts == 1 and ticket.last_error
    router_server.mode = "normal"
    provisioning.provision_ticket(ticket)
    provisioning.provision_ticket(ticket)
    assert ticket.status == TicketStatus.CREATED and ticket.attempts == 2
    assert len(router_server.users()) == 1


def test_active_login_is_recorded_and_never_fatal(router, plan, router_server):
    router_server.add_host("10.5.50.23", "AA:BB:CC:DD:EE:01")
    ticket = provisioning.new_ticket(router, provisioning.Sale.of_plan(plan), tag="order44", client_ip="10.5.50.23",
                                     client_mac="AA:BB:CC:DD:EE:01")
    db.session.commit()  # the credentials are saved before the router hears them
    provisioning.provision_ticket(ticket)
    assert provisioning.log_client_in(ticket) is True and ticket.login_result == "ok"
    [session] = router_server.active()
    assert session["user"] == ticket.username and session["address"] == "10.5.50.23"

    stranger = provisioning.new_ticket(router, provisioning.Sale.of_plan(plan), tag="order45", client_ip="10.5.50.99")
    db.session.commit()  # the credentials are saved before the router hears them
    provisioning.provision_ticket(stranger)
    assert provisioning.log_client_in(stranger) is False
    assert stranger.login_result.startswith("failed")


def test_sell_from_the_owner_page(app, router, plan, router_server):
    from tests.conftest import Browser
    browser = Browser(app.test_client())
    browser.login("seller@example.com", "seller-password")
    response = browser.post(f"/owner/routers/{router.id}/sell", {"plan_id": plan.id}, headers={"HX-Request": "true"})
    page = page_text(response)
    [user] = router_server.users()
    assert response.status_code == 200 and user["name"] in page and "<html" not in page
    router_server.mode = "refuse"
    failed = browser.post(f"/owner/routers/{router.id}/sell", {"plan_id": plan.id})
    assert failed.status_code == 502 and "n'a pas pu ouvrir de session API" in page_text(failed)
    pending = db.session.scalar(db.select(Ticket).where(Ticket.status == TicketStatus.PENDING))
    router_server.mode = "normal"
    retried = browser.post(f"/owner/routers/{router.id}/tickets/{pending.id}/retry")
    assert retried.status_code == 200 and pending.username in page_text(retried)
    assert len(router_server.users()) == 2


def test_ticket_sell_command(app, router, plan, router_server):
    result = app.test_cli_runner().invoke(args=["ticket", "sell", "--router", "Maquis", "--plan", "1 jour"])
    assert result.exit_code == 0, result.output
    [user] = router_server.users()
    assert f"Username: {user['name']}" in result.output and f"Password: {user['password']}" in result.output
    missing = app.test_cli_runner().invoke(args=["ticket", "sell", "--router", "Maquis", "--plan", "nope"])
    assert missing.exit_code != 0 and "has no plan" in missing.output


def test_ticket_passwords_are_encrypted_at_rest(router, plan):
    ticket = provisioning.sell_by_hand(router, plan)
    raw = db.session.execute(db.text("SELECT password FROM ticket")).scalar()
    assert ticket.password not in raw


def test_no_secret_reaches_the_logs(router, plan, router_server, caplog):
    caplog.set_level("DEBUG")
    ticket = provisioning.sell_by_hand(router, plan)
    router_server.mode = "refuse"
    with pytest.raises(RouterError):
        provisioning.sell_by_hand(router, plan)
    pending = db.session.scalar(db.select(Ticket).where(Ticket.status == TicketStatus.PENDING))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not created on router" in logged  # the failure was logged...
    for secret in (ROUTER_PASSWORD, ticket.password, pending.password):
        assert secret not in logged  # ...without any secret


def test_settings_with_too_few_codes_are_refused(browser, router_server):
    from tests.conftest import router_values

    page = browser.post("/owner/routers/new", router_values(router_server, name_length="3", charset="num"))
    assert page.status_code == 422
    assert "ne donnent que 512 codes différents" in page_text(page)
    assert db.session.scalar(db.select(db.func.count(Router.id))) == 0
    assert browser.post("/owner/routers/new", router_values(router_server)).status_code == 302  # 6 letters: plenty


def test_a_router_out_of_free_names_fails_the_sale_quickly(app, router, plan, router_server):
    """Old settings with a tiny name space (512 codes), all of them sold: a clear error, never a spin."""
    import itertools
    import threading

    router.user_mode, router.charset, router.name_length = "vc", "num", 3
    db.session.add_all(Ticket(router=router, plan_label="1 jour", price=500, username="".join(digits),
                              password="x", profile="1d", server="all", comment="vc-100-01.01.26-x")
                       for digits in itertools.product("23456789", repeat=3))
    db.session.commit()
    outcome = []

    def sell() -> None:
        with app.app_context():
            try:
                provisioning.sell_by_hand(db.session.get(Router, router.id), db.session.get(Plan, plan.id))
            except RouterError as exc:
                outcome.append(router_service.describe_router_error(exc))

    seller = threading.Thread(target=sell, daemon=True)
    seller.start()
    seller.join(60)
    assert not seller.is_alive(), "the sale kept drawing names"
    assert outcome == ["Plus aucun code libre avec les réglages des tickets de ce routeur : allongez le code "
                       "ou prenez plus de caractères."]
    assert router_server.users() == []
