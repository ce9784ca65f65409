"""Whatever a buyer's browser or a caller sends to a public address, Kiosque never answers 500."""

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.extensions import db
from portal.models import Order, WebhookEvent
from sandbox import demo, point_adapters_at
from tests.conftest import ROUTER_PASSWORD
from tests.provider_signing import cinetpay_x_token

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
text = st.text(max_size=60)
junk = text | st.sampled_from(["", "0", "-1", "1" * 30, "<script>", "javascript:alert(1)", "//evil.example",
                               "AA:BB:CC:DD:EE:FF", "10.5.50.2", "%00", "\u202e"])
FIELDS = ["plan_id", "account_id", "intent", "phone", "network", "mac", "ip", "dst", "server", "reference",
          "nasid", "amount", "profile_name", "pub_key", "siteid", "token", "id", "transaction_id"]
params = st.dictionaries(st.sampled_from(FIELDS) | text, junk, max_size=8)


@pytest.fixture
def selling(app, router_server, provider_sandbox):
    point_adapters_at(app, provider_sandbox)
    router = demo.seed_shop(router_server.host, router_server.port, ROUTER_PASSWORD, dns_name="wifi.net",
                            email="fuzz@example.com", password="fuzz-password", router_name="Fuzz")
    demo.register_accounts(provider_sandbox, router, "http://127.0.0.1:9")  # webhooks go nowhere
    return router


@FUZZ
@given(query=params, form=params)
def test_buyer_pages(app, selling, query, form):
    client = app.test_client()
    for method, path in [("GET", f"/r/{selling.slug}"), ("POST", f"/r/{selling.slug}/buy"),
                         ("GET", "/retrieve"), ("POST", "/retrieve"), ("GET", "/buy-mikhmon"),
                         ("GET", "/buy-mikhmon-cinetpay"), ("GET", "/buy-mikhmon-feexpay"), ("GET", "/o/ABCDEFGHJK"),
                         ("POST", "/o/ABCDEFGHJK"), ("GET", "/o/ABCDEFGHJK/status"), ("GET", "/lang/en")]:
        response = client.open(path, method=method, query_string=query, data=form if method == "POST" else None)
        assert response.status_code < 500, (method, path, response.status_code)


@FUZZ
@given(code=text, slug=text, next_=junk)
def test_addresses_built_from_junk(app, selling, code, slug, next_):
    client = app.test_client()
    code, slug = quote(code, safe=""), quote(slug, safe="")
    for path in (f"/o/{code}", f"/o/{code}/status", f"/r/{slug}", f"/lang/{code}"):
        assert client.get(path, query_string={"next": next_}).status_code < 500, path
    response = client.get("/lang/fr", query_string={"next": next_})
    if "\x00" in next_:
        assert response.status_code == 400
    else:
        # As a browser reads it: tabs and line breaks dropped, a backslash taken for a slash.
        location = response.location.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
        assert location.startswith("/") and not location.startswith("//")


@FUZZ
@given(body=st.binary(max_size=2000), headers=st.dictionaries(
    st.sampled_from(["Content-Type", "X-FEDAPAY-SIGNATURE", "x-token", "X-Forwarded-For"]),
    junk.filter(lambda v: "\r" not in v and "\n" not in v), max_size=3),  # HTTP cannot carry line breaks
    form=params)
def test_provider_callbacks(app, selling, body, headers, form):
    client = app.test_client()
    for account in selling.accounts:
        url = f"/webhooks/{account.provider}/{account.webhook_token}"
        assert client.post(url, data=body, headers=headers).status_code < 500
        assert client.post(url, data=form).status_code < 500
        assert client.post(url, json=form).status_code < 500


def test_a_paid_orders_page_is_fine_with_junk_return_parameters(app, selling):
    """The return address takes whatever the provider appends."""
    client = app.test_client()
    plan = selling.plans[0]
    account = next(a for a in selling.accounts if a.provider == "fedapay")
    response = client.post(f"/r/{selling.slug}/buy", data={"plan_id": plan.id, "account_id": account.id,
                                                            "intent": "fuzz-intent"})
    assert response.status_code == 303
    code = db.session.scalar(db.select(Order.code))
    assert client.get(f"/o/{code}", query_string={"id": "<x>", "status": "approved'"}).status_code == 200


def test_nul_characters_are_refused_everywhere(app, selling):
    """PostgreSQL refuses NUL in text: no request may carry one down to the database."""
    client = app.test_client()
    assert client.get(f"/r/{selling.slug}%00").status_code in (400, 404)
    assert client.get("/retrieve", query_string={"reference": "a\x00b"}).status_code == 400
    assert client.post("/retrieve", data={"reference": "ABCD\x00", "phone": "2290197000000"}).status_code == 400
    account = selling.accounts[0]
    stored = client.post(f"/webhooks/{account.provider}/{account.webhook_token}", data=b'{"id": "\x00"}',
                         headers={"Content-Type": "application/json"})
    assert stored.status_code < 500


@pytest.mark.parametrize("provider", ["feexpay", "cinetpay"])
def test_a_nul_inside_a_callback_is_refused_and_the_callback_kept(app, selling, provider):
    """A JSON \\u0000 or a form %00 reaches the adapter as a real NUL: 400, never a 500, and the event stays."""
    account = next(a for a in selling.accounts if a.provider == provider)
    url = f"/webhooks/{provider}/{account.webhook_token}"
    client = app.test_client()
    if provider == "feexpay":
        answer = client.post(url, data=b'{"reference": "abc\\u0000", "status": "SUCCESSFUL"}',
                             headers={"Content-Type": "application/json"})
    else:
        fields = {"cpm_site_id": account.secrets["site_id"], "cpm_trans_id": "AB\x00CD"}
        answer = client.post(url, data=fields, headers={"x-token": cinetpay_x_token(account.secrets["secret_key"],
                                                                                     fields)})
    assert answer.status_code == 400
    [event] = db.session.scalars(db.select(WebhookEvent)).all()
    assert event.outcome == "invalid" and event.account_id == account.id
