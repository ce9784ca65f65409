from portal.extensions import db
from portal.models import Plan, Router
from tests.conftest import page_text, router_values


def router_with_facts(browser, server) -> Router:
    assert browser.post("/owner/routers/new", router_values(server)).status_code == 302
    router = db.session.scalar(db.select(Router))
    assert browser.post(f"/owner/routers/{router.id}/test").status_code == 200
    return router


def plan_values(**overrides) -> dict:
    values = {"label": "1 heure", "profile": "1h", "price": "200", "currency": "XOF", "time_limit": "60m",
              "data_limit": "500M", "active": "y", "position": "1"}
    values.update(overrides)
    return values


def test_create_plan_normalises_limits(browser, router_server):
    router = router_with_facts(browser, router_server)
    response = browser.post(f"/owner/routers/{router.id}/plans/new", plan_values())
    assert response.status_code == 302
    plan = db.session.scalar(db.select(Plan))
    assert (plan.label, plan.profile, plan.price, plan.time_limit, plan.data_limit_bytes) == (
        "1 heure", "1h", 200, "1h", 500 * 1048576)
    page = page_text(browser.get(f"/owner/routers/{router.id}"))
    assert "200\u00a0FCFA" in page and "1 h · 500 Mo" in page


def test_plan_form_errors(browser, router_server):
    router = router_with_facts(browser, router_server)
    response = browser.post(f"/owner/routers/{router.id}/plans/new", plan_values(
        profile="nope", price="-5", time_limit="1x", data_limit="lots"))
    page = page_text(response)
    assert response.status_code == 422
    assert "Durée MikroTik attendue" in page and "Volume attendu" in page
    assert page.count('class="field has-error"') == 3  # price, time limit, data limit
    assert db.session.scalar(db.select(db.func.count(Plan.id))) == 0
    unknown_profile = browser.post(f"/owner/routers/{router.id}/plans/new", plan_values(profile="nope"))
    assert unknown_profile.status_code == 422
    assert "pas de profil « nope »" in page_text(unknown_profile)


def test_plan_needs_a_tested_router(browser, router_server):
    browser.post("/owner/routers/new", router_values(router_server))
    router = db.session.scalar(db.select(Router))
    response = browser.post(f"/owner/routers/{router.id}/plans/new", plan_values())
    assert response.status_code == 422
    assert "Testez d'abord la connexion" in page_text(response)


def test_edit_and_delete_plan(browser, router_server):
    router = router_with_facts(browser, router_server)
    browser.post(f"/owner/routers/{router.id}/plans/new", plan_values())
    plan = db.session.scalar(db.select(Plan))
    form = page_text(browser.get(f"/owner/plans/{plan.id}/edit"))
    assert 'value="500M"' in form
    response = browser.post(f"/owner/plans/{plan.id}/edit", plan_values(price="250", data_limit="0", time_limit=""))
    assert response.status_code == 302
    db.session.refresh(plan)
    assert (plan.price, plan.data_limit_bytes, plan.time_limit) == (250, 0, "")
    assert browser.post(f"/owner/plans/{plan.id}/delete").status_code == 302
    assert db.session.scalar(db.select(Plan).where(Plan.id == plan.id)) is None


def test_import_plans_from_mikhmon_profiles(browser, router_server):
    router = router_with_facts(browser, router_server)
    page = page_text(browser.get(f"/owner/routers/{router.id}/plans/import"))
    # 1w sells at its selling price 2500, not its price 2000; "default" has no Mikhmon header.
    assert "2\u202f500\u00a0FCFA" in page and ">default<" not in page
    response = browser.post(f"/owner/routers/{router.id}/plans/import", {"profile": ["1d", "1w"]})
    assert response.status_code == 302
    plans = {p.profile: p for p in db.session.scalars(db.select(Plan))}
    assert set(plans) == {"1d", "1w"}
    assert (plans["1w"].price, plans["1w"].validity, plans["1d"].price) == (2500, "1w", 500)
    # Importing again proposes them as existing and creates nothing more.
    browser.post(f"/owner/routers/{router.id}/plans/import", {"profile": ["1d", "1w"]})
    assert db.session.scalar(db.select(db.func.count(Plan.id))) == 2
