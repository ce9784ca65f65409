"""Whatever an owner types into a form, the answer is the page or a form error, never a 500."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.extensions import db
from portal.models import Router
from tests.conftest import router_values
from tests.support import expected_statuses

junk = st.text(max_size=40) | st.sampled_from(["", "0", "-1", "99999999999999999999", "1e3", "<b>x</b>", "\x00"])
ROUTER_FIELDS = ("name", "host", "port", "api_username", "api_password", "hotspot_server", "dns_name",
                 "user_mode", "name_length", "charset", "prefix", "currency", "notify_email")
PLAN_FIELDS = ("label", "profile", "price", "currency", "time_limit", "data_limit", "position")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.fixed_dictionaries({}, optional={name: junk for name in ROUTER_FIELDS}))
def test_router_form_never_fails(browser, router_server, data):
    response = browser.post("/owner/routers/new", {**router_values(router_server, name="x"), **data})
    assert response.status_code in expected_statuses(data), response.status_code
    if response.status_code == 302:  # accepted: clean up so the name is free again
        db.session.delete(db.session.scalar(db.select(Router).order_by(Router.id.desc())))
        db.session.commit()


@FUZZ
@given(data=st.fixed_dictionaries({}, optional={name: junk for name in PLAN_FIELDS}))
def test_plan_form_never_fails(browser, router_server, data):
    if db.session.scalar(db.select(Router)) is None:
        browser.post("/owner/routers/new", router_values(router_server))
        browser.post(f"/owner/routers/{db.session.scalar(db.select(Router.id))}/test")
    router_id = db.session.scalar(db.select(Router.id))
    values = {"label": "p", "profile": "1h", "price": "100", "currency": "XOF", **data}
    response = browser.post(f"/owner/routers/{router_id}/plans/new", values)
    assert response.status_code in expected_statuses(data), response.status_code
