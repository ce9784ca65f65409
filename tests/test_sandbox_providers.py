"""The provider sandbox speaks each API as docs/providers.md describes, over real HTTP.

These tests talk to the sandbox with plain requests, never through the adapters, and check
signatures with tests/provider_signing.py. Their fixtures (`sandbox`, `receiver`) and helpers
live in tests/conftest.py, shared with the adapter tests.
"""

import json
import secrets
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Request

from sandbox.providers import ProviderSandbox
from tests.conftest import CINETPAY, FEDAPAY, FEEXPAY, Receiver, Recorded, choose, follow_form, parse_form
from tests.provider_signing import CINETPAY_SIGNED_FIELDS, cinetpay_x_token, fedapay_signature

# -- FedaPay look-alike --------------------------------------------------------------------------

FEDAPAY_AUTH = {"Authorization": f"Bearer {FEDAPAY['secret_key']}"}


def _fedapay_create(sandbox: ProviderSandbox, receiver: Receiver, **changes: object) -> dict:
    body = {
        "description": "Forfait 1 jour",
        "amount": 500,
        "currency": {"iso": "XOF"},
        "callback_url": receiver.url("/o/ABC?lang=fr"),
        "custom_metadata": {"order_code": "ABC"},
    }
    body.update(changes)
    answer = requests.post(f"{sandbox.api_url('fedapay')}/v1/transactions", json=body, headers=FEDAPAY_AUTH)
    assert answer.status_code == 201, answer.text
    return answer.json()["v1/transaction"]


def test_fedapay_refuses_missing_wrong_and_other_environment_keys(sandbox):
    url = f"{sandbox.api_url('fedapay')}/v1/transactions"
    assert requests.get(url).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer sk_sandbox_nope"})
    assert wrong.status_code == 401 and wrong.json()["message"]
    sandbox.add_fedapay_account(secret_key="sk_live_real", public_key="pk_live_x", webhook_secret="w", webhook_url="")
    live_key = {"Authorization": "Bearer sk_live_real"}
    on_sandbox = requests.get(url, headers=live_key)
    assert on_sandbox.status_code == 401 and "live" in on_sandbox.json()["message"]
    on_live = requests.get(f"{sandbox.api_url('fedapay', 'live')}/v1/transactions", headers=live_key)
    assert on_live.status_code == 200 and on_live.json()["v1/transactions"] == []


def test_fedapay_validates_like_the_api(sandbox):
    answer = requests.post(
        f"{sandbox.api_url('fedapay')}/v1/transactions",
        json={"description": "", "amount": "500", "currency": {"iso": "USD"}},
        headers=FEDAPAY_AUTH,
    )
    assert answer.status_code == 422
    assert set(answer.json()["errors"]) == {"description", "amount", "currency"}
    assert answer.json()["message"]


def test_fedapay_transaction_token_page_and_callback(sandbox, receiver):
    tx = _fedapay_create(sandbox, receiver)
    assert tx["klass"] == "v1/transaction" and tx["status"] == "pending" and tx["amount"] == 500
    assert tx["custom_metadata"] == {"order_code": "ABC"} and tx["reference"]
    api = sandbox.api_url("fedapay")
    token = requests.post(f"{api}/v1/transactions/{tx['id']}/token", headers=FEDAPAY_AUTH).json()
    assert set(token) == {"token", "url"} and token["url"].endswith(f"/process/{token['token']}")
    assert requests.post(f"{api}/v1/transactions/999999/token", headers=FEDAPAY_AUTH).status_code == 404

    answer = choose(token["url"], "approve")
    assert answer.status_code == 302
    target = urlsplit(answer.headers["Location"])
    assert target.path == "/o/ABC"
    assert parse_qs(target.query) == {"lang": ["fr"], "id": [str(tx["id"])], "status": ["approved"]}

    fetched = requests.get(f"{api}/v1/transactions/{tx['id']}?include=currency", headers=FEDAPAY_AUTH)
    entity = fetched.json()["v1/transaction"]
    assert entity["status"] == "approved" and entity["approved_at"] and entity["currency"]["iso"] == "XOF"
    # A settled transaction can no longer be paid.
    assert requests.get(token["url"]).text.count("<button") == 0
    assert requests.post(f"{api}/v1/transactions/{tx['id']}/token", headers=FEDAPAY_AUTH).status_code == 422


def _fedapay_signature_check(hook: Recorded) -> tuple[int, bool]:
    """The webhook's timestamp, and whether its signature is right for the account's secret."""
    value = hook.headers["X-Fedapay-Signature"]
    timestamp = int(value.split(",")[0].removeprefix("t="))
    return timestamp, value == fedapay_signature(FEDAPAY["webhook_secret"], hook.body, timestamp)


def test_fedapay_webhook_is_signed_per_scheme(sandbox, receiver):
    tx = _fedapay_create(sandbox, receiver)
    sandbox.decline("fedapay", str(tx["id"]))
    (hook,) = receiver.wait_for("/webhooks/fedapay")
    event = json.loads(hook.body)
    assert event["name"] == "transaction.declined" and event["object"] == "transaction"
    assert event["entity"]["id"] == tx["id"] and event["entity"]["status"] == "declined"
    timestamp, valid = _fedapay_signature_check(hook)
    assert valid and abs(time.time() - timestamp) < 5


def test_fedapay_webhook_knobs_type_key_stale_and_forged(sandbox, receiver):
    sandbox.set_knobs(fedapay_event_key="type", stale_signatures=True)
    first = _fedapay_create(sandbox, receiver)
    sandbox.cancel("fedapay", str(first["id"]))
    (stale,) = receiver.wait_for("/webhooks/fedapay")
    assert json.loads(stale.body)["type"] == "transaction.canceled"
    timestamp, valid = _fedapay_signature_check(stale)
    assert valid and time.time() - timestamp > 300

    sandbox.set_knobs(stale_signatures=False, forge_signatures=True)
    second = _fedapay_create(sandbox, receiver)
    sandbox.approve("fedapay", str(second["id"]))
    forged = receiver.wait_for("/webhooks/fedapay", 2)[1]
    timestamp, valid = _fedapay_signature_check(forged)
    assert not valid and abs(time.time() - timestamp) < 5


def test_out_of_order_sends_the_earlier_state_last(sandbox, receiver):
    sandbox.out_of_order = True
    tx = _fedapay_create(sandbox, receiver)
    sandbox.approve("fedapay", str(tx["id"]))
    assert sandbox.drain()
    names = [json.loads(r.body)["name"] for r in receiver.received("/webhooks/fedapay")]
    assert names == ["transaction.approved", "transaction.created"]


# -- CinetPay look-alike -------------------------------------------------------------------------


def _cinetpay_payment(receiver: Receiver, **changes: object) -> dict:
    body = {
        "apikey": CINETPAY["apikey"],
        "site_id": CINETPAY["site_id"],
        "transaction_id": secrets.token_hex(5).upper(),
        "amount": 500,
        "currency": "XOF",
        "description": "Forfait 1 jour",
        "notify_url": receiver.url("/webhooks/cinetpay/tok"),
        "return_url": receiver.url("/o/ABC"),
        "channels": "MOBILE_MONEY",
        "metadata": "ABC",
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"apikey": "wrong"}, "609"),
        ({"site_id": "000"}, "613"),
        ({"notify_url": ""}, "608"),
        ({"amount": 123}, "608"),
        ({"amount": 95}, "641"),
        ({"currency": "EUR"}, "608"),
    ],
)
def test_cinetpay_refuses_with_its_codes(sandbox, receiver, changes, code):
    url = f"{sandbox.api_url('cinetpay')}/v2/payment"
    answer = requests.post(url, json=_cinetpay_payment(receiver, **changes))
    assert answer.status_code == 400
    assert answer.json()["code"] == code and answer.json()["message"] and answer.json()["description"]


def test_cinetpay_payment_check_and_duplicate_id(sandbox, receiver):
    api = sandbox.api_url("cinetpay")
    payment = _cinetpay_payment(receiver)
    created = requests.post(f"{api}/v2/payment", json=payment).json()
    assert created["code"] == "201" and created["message"] == "CREATED"
    assert created["data"]["payment_url"].endswith(f"/payment/{created['data']['payment_token']}")
    assert requests.post(f"{api}/v2/payment", json=payment).json()["code"] != "201"

    auth = {"apikey": CINETPAY["apikey"], "site_id": CINETPAY["site_id"]}
    waiting = requests.post(f"{api}/v2/payment/check", json={**auth, "transaction_id": payment["transaction_id"]})
    assert waiting.json()["code"] == "662" and waiting.json()["data"]["status"] == "WAITING_FOR_CUSTOMER"
    sandbox.decline("cinetpay", payment["transaction_id"])
    failed = requests.post(f"{api}/v2/payment/check", json={**auth, "token": created["data"]["payment_token"]})
    assert failed.status_code == 400
    assert failed.json()["code"] == "602" and failed.json()["data"]["status"] == "REFUSED"
    assert failed.json()["data"]["amount"] == "500"


def test_cinetpay_page_returns_by_post_and_sends_a_signed_ipn(sandbox, receiver):
    api = sandbox.api_url("cinetpay")
    payment = _cinetpay_payment(receiver)
    url = requests.post(f"{api}/v2/payment", json=payment).json()["data"]["payment_url"]
    page = choose(url, "approve")
    back = follow_form(url, page)
    assert back.status_code == 200
    (returned,) = receiver.received("/o/ABC")
    assert returned.method == "POST" and returned.form["transaction_id"] == payment["transaction_id"]
    assert returned.form["token"] == url.rsplit("/", 1)[1]

    (ipn,) = receiver.wait_for("/webhooks/cinetpay")
    assert ipn.method == "POST" and set(ipn.form) == set(CINETPAY_SIGNED_FIELDS)
    assert ipn.form["cpm_trans_id"] == payment["transaction_id"] and ipn.form["cpm_amount"] == "500"
    assert ipn.headers["X-Token"] == cinetpay_x_token(CINETPAY["secret_key"], ipn.form)
    auth = {"apikey": CINETPAY["apikey"], "site_id": CINETPAY["site_id"]}
    check = requests.post(f"{api}/v2/payment/check", json={**auth, "transaction_id": payment["transaction_id"]}).json()
    assert check["code"] == "00" and check["message"] == "SUCCES" and check["data"]["status"] == "ACCEPTED"
    assert check["data"]["operator_id"] and check["data"]["payment_date"]


def test_cinetpay_multipart_ipn(sandbox, receiver):
    sandbox.set_knobs(cinetpay_ipn_encoding="multipart")
    payment = _cinetpay_payment(receiver)
    requests.post(f"{sandbox.api_url('cinetpay')}/v2/payment", json=payment)
    sandbox.approve("cinetpay", payment["transaction_id"])
    (ipn,) = receiver.wait_for("/webhooks/cinetpay")
    parsed = Request.from_values(data=ipn.body, headers={"Content-Type": ipn.headers["Content-Type"]})
    assert parsed.mimetype == "multipart/form-data" and not parsed.files
    fields = dict(parsed.form)
    assert set(fields) == set(CINETPAY_SIGNED_FIELDS) and fields["cpm_trans_id"] == payment["transaction_id"]
    assert ipn.headers["X-Token"] == cinetpay_x_token(CINETPAY["secret_key"], fields)


def test_fedapay_refusing_a_customer(sandbox, receiver):
    url = f"{sandbox.api_url('fedapay')}/v1/transactions"
    body = {"description": "Forfait", "amount": 500, "currency": {"iso": "XOF"}}
    phone = {"phone_number": {"number": "+2290197000000", "country": "bj"}}
    sandbox.set_knobs(fedapay_refuse_customer="with_phone")
    refused = requests.post(url, json={**body, "customer": phone}, headers=FEDAPAY_AUTH)
    assert refused.status_code == 422 and list(refused.json()["errors"]) == ["customer.phone_number"]
    named = {"firstname": "Awa", "lastname": "Koné"}
    assert requests.post(url, json={**body, "customer": named}, headers=FEDAPAY_AUTH).status_code == 201
    sandbox.set_knobs(fedapay_refuse_customer="without_email")
    refused = requests.post(url, json={**body, "customer": named}, headers=FEDAPAY_AUTH)
    assert refused.status_code == 422 and list(refused.json()["errors"]) == ["customer.email"]
    emailed = {**named, "email": "awa@example.com", **phone}
    assert requests.post(url, json={**body, "customer": emailed}, headers=FEDAPAY_AUTH).status_code == 201
    assert requests.post(url, json=body, headers=FEDAPAY_AUTH).status_code == 201


def test_cinetpay_leave_pending_ping_and_short_ipns(sandbox, receiver):
    sandbox.set_knobs(cinetpay_ping=True, cinetpay_ipn_fields="ids_only")
    payment = _cinetpay_payment(receiver)
    url = requests.post(f"{sandbox.api_url('cinetpay')}/v2/payment", json=payment).json()["data"]["payment_url"]
    choose(url, "pending")
    ping, ipn = receiver.wait_for("/webhooks/cinetpay", 2)
    assert ping.method == "GET" and ping.body == b""
    assert set(ipn.form) == {"cpm_site_id", "cpm_trans_id"}
    assert ipn.headers["X-Token"] == cinetpay_x_token(CINETPAY["secret_key"], ipn.form)
    assert "approve" in parse_form(requests.get(url).text).buttons  # still payable

    sandbox.set_knobs(cinetpay_ping=False, cinetpay_ipn_fields="no_error_message")
    sandbox.approve("cinetpay", payment["transaction_id"])
    last = receiver.wait_for("/webhooks/cinetpay", 3)[2]
    assert "cpm_error_message" not in last.form and "cpm_designation" in last.form
    assert last.headers["X-Token"] == cinetpay_x_token(CINETPAY["secret_key"], last.form)


# -- FeexPay look-alike --------------------------------------------------------------------------

FEEXPAY_AUTH = {"Authorization": f"Bearer {FEEXPAY['token']}"}


def _feexpay_push(sandbox: ProviderSandbox, network: str = "mtn", headers=FEEXPAY_AUTH, **changes: object):
    body = {"shop": FEEXPAY["shop_id"], "amount": 500, "phoneNumber": "2290197000000", "description": "Forfait"}
    body.update(changes)
    url = f"{sandbox.api_url('feexpay')}/api/transactions/public/requesttopay/{network}"
    return requests.post(url, json=body, headers=headers)


@pytest.mark.parametrize(
    ("network", "changes", "status"),
    [
        ("mtn", {"shop": "other"}, 400),
        ("celtiis", {}, 400),
        ("mtn", {"phoneNumber": "0197000000"}, 400),
        ("mtn", {"description": "Forfait 1-jour"}, 400),
        ("mtn", {"amount": 99}, 400),
    ],
)
def test_feexpay_validates_pushes(sandbox, network, changes, status):
    answer = _feexpay_push(sandbox, network, **changes)
    assert answer.status_code == status and answer.json()["message"]


def test_feexpay_push_status_and_unsigned_webhook(sandbox, receiver):
    assert _feexpay_push(sandbox, headers={}).status_code == 401
    pushed = _feexpay_push(sandbox, "moov", description="Forfait 1-jour", callback_info="ABC")
    assert pushed.status_code == 202 and pushed.json()["status"] == "PENDING"
    reference = pushed.json()["reference"]
    status_url = f"{sandbox.api_url('feexpay')}/api/transactions/public/single/status/{reference}"
    assert requests.get(status_url).status_code == 401
    assert requests.get(status_url + "x", headers=FEEXPAY_AUTH).status_code == 404

    prompt = sandbox.phone_url(reference)
    assert prompt in [urljoin(prompt, a) for a in _links(requests.get(f"{sandbox.base_url}/feexpay/phone").text)]
    assert choose(prompt, "approve").status_code == 200
    status = requests.get(status_url, headers=FEEXPAY_AUTH).json()
    assert status["status"] == "SUCCESSFUL" and status["amount"] == 500 and status["callback_info"] == "ABC"
    (hook,) = receiver.wait_for("/webhooks/feexpay")
    body = json.loads(hook.body)
    assert body["reference"] == body["order_id"] == reference and body["status"] == "SUCCESSFUL"
    assert not [h for h in hook.headers if "signature" in h.lower() or "token" in h.lower()]


def test_feexpay_immediate_outcome_and_wrapped_status(sandbox):
    sandbox.set_knobs(feexpay_push_outcome="FAILED", feexpay_status_in_data=True)
    pushed = _feexpay_push(sandbox).json()
    assert pushed["status"] == "FAILED"
    url = f"{sandbox.api_url('feexpay')}/api/transactions/public/single/status/{pushed['reference']}"
    status = requests.get(url, headers=FEEXPAY_AUTH).json()["data"]
    assert status["status"] == "FAILED" and status["reason"]


def test_feexpay_status_names_the_operator_reference_operator_id_and_no_currency(sandbox, receiver):
    reference = _feexpay_push(sandbox, "mtn_cg", phoneNumber="242061234567").json()["reference"]
    prompt = requests.get(sandbox.phone_url(reference)).text
    assert "F\u202fCFA" in prompt and "242061234567" in prompt
    sandbox.approve("feexpay", reference)
    status = requests.get(f"{sandbox.api_url('feexpay')}/api/transactions/public/single/status/{reference}",
                          headers=FEEXPAY_AUTH).json()
    assert status["operator_id"] and "ref_operator" not in status and "currency" not in status
    (hook,) = receiver.wait_for("/webhooks/feexpay")
    assert json.loads(hook.body)["ref_operator"] == status["operator_id"]
    sandbox.set_knobs(feexpay_status_unauthorized=True)
    refused = requests.get(f"{sandbox.api_url('feexpay')}/api/transactions/public/single/status/{reference}",
                           headers=FEEXPAY_AUTH)
    assert refused.status_code == 401 and refused.json()["message"]


def test_feexpay_payment_page_networks(sandbox, receiver):
    assert _feexpay_push(sandbox, "wave_ci", phoneNumber="2250707000000").json() == {
        "message": "The return_url field is required"}
    answer = _feexpay_push(sandbox, "wave_ci", phoneNumber="2250707000000", callback_info="ABC",
                           return_url=receiver.url("/o/ABC"), cancel_url=receiver.url("/o/ABC?cancel=1"))
    body = answer.json()
    assert answer.status_code == 202 and "reference" not in body and body["status"] == "PENDING"
    page = body["payment_url"]
    assert page == f"{sandbox.base_url}/feexpay/pay/{body['order_id']}"
    assert requests.get(sandbox.phone_url(body["order_id"])).status_code == 404  # nothing rings
    assert "2250707000000" not in requests.get(f"{sandbox.base_url}/feexpay/phone").text
    cancelled = choose(page, "cancel")
    assert cancelled.status_code == 302 and cancelled.headers["Location"] == receiver.url("/o/ABC?cancel=1")
    (hook,) = receiver.wait_for("/webhooks/feexpay")
    assert json.loads(hook.body)["order_id"] == body["order_id"] and json.loads(hook.body)["status"] == "FAILED"
    paid = _feexpay_push(sandbox, "orange_ci", phoneNumber="2250707000000", return_url=receiver.url("/o/DEF")).json()
    assert choose(paid["payment_url"], "approve").headers["Location"] == receiver.url("/o/DEF")


def test_feexpay_payment_code_networks(sandbox):
    for network, phone in (("orange_sn", "221771234567"), ("orange_bf", "22676123456")):
        asked = _feexpay_push(sandbox, network, phoneNumber=phone)
        assert asked.status_code == 400 and "OTP" in asked.json()["message"]
        pushed = _feexpay_push(sandbox, network, phoneNumber=phone, otp="123456")
        assert pushed.status_code == 202 and "payment_url" not in pushed.json()
    assert _feexpay_push(sandbox, "orange_sn", phoneNumber="221771234567", otp="12").status_code == 400
    sandbox.set_knobs(feexpay_refuse_otp=True)
    assert _feexpay_push(sandbox, "orange_sn", phoneNumber="221771234567", otp="1234").json() == {
        "message": "Invalid OTP code"}
    sandbox.set_knobs(feexpay_refuse_otp=False, feexpay_flow="otp_redirect")
    assert _feexpay_push(sandbox, "mtn", otp="1234", return_url="http://x/o").json()["payment_url"]
    sandbox.set_knobs(feexpay_flow="otp")
    assert _feexpay_push(sandbox, "mtn").status_code == 400


def test_outage_after_create_makes_the_payment_and_loses_the_answer(sandbox, receiver):
    sandbox.set_knobs(outage_after_create=True)
    lost = _feexpay_push(sandbox, callback_info="ABC")
    assert lost.status_code == 502
    (payment,) = sandbox.transactions("feexpay")
    assert payment["callback_info"] == "ABC" and payment["status"] == "PENDING"
    assert requests.get(sandbox.phone_url(payment["reference"])).status_code == 200  # the phone rings
    api = sandbox.api_url("cinetpay")
    assert requests.post(f"{api}/v2/payment", json=_cinetpay_payment(receiver)).status_code == 502
    assert requests.post(f"{api}/v2/payment/check", json={}).status_code == 400  # only creations lose answers
    assert len(sandbox.transactions("cinetpay")) == 1
    sandbox.set_knobs(outage_drops_connection=True)
    with pytest.raises(requests.ConnectionError):
        _feexpay_push(sandbox)
    assert len(sandbox.transactions("feexpay")) == 2


def test_late_approvals(sandbox, receiver):
    reference = _feexpay_push(sandbox).json()["reference"]
    sandbox.decline("feexpay", reference)
    assert sandbox.drain()
    with pytest.raises(ValueError):  # Conflict: refused is refused
        sandbox.approve("feexpay", reference)
    sandbox.set_knobs(late_approvals=True)
    sandbox.approve("feexpay", reference)
    with pytest.raises(ValueError):
        sandbox.approve("feexpay", reference)  # paid once only
    first, late = receiver.wait_for("/webhooks/feexpay", 2)
    assert [json.loads(h.body)["status"] for h in (first, late)] == ["FAILED", "SUCCESSFUL"]
    tx = _fedapay_create(sandbox, receiver)
    sandbox.cancel("fedapay", str(tx["id"]))
    sandbox.approve("fedapay", str(tx["id"]))
    payment = _cinetpay_payment(receiver)
    requests.post(f"{sandbox.api_url('cinetpay')}/v2/payment", json=payment)
    sandbox.decline("cinetpay", payment["transaction_id"])
    sandbox.approve("cinetpay", payment["transaction_id"])
    assert [t["status"] for t in sandbox.transactions("fedapay")] == ["approved"]
    assert [t["status"] for t in sandbox.transactions("cinetpay")] == ["ACCEPTED"]


def _links(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('href="')[1:]]


# -- knobs and control ---------------------------------------------------------------------------


def test_duplicates_delay_and_lost_notifications(sandbox, receiver):
    sandbox.set_knobs(duplicate_notifications=3, notification_delay=0.3)
    tx = _fedapay_create(sandbox, receiver)
    started = time.monotonic()
    sandbox.approve("fedapay", str(tx["id"]))
    assert receiver.received("/webhooks/fedapay") == []  # not sent inline
    receiver.wait_for("/webhooks/fedapay", 3)
    assert time.monotonic() - started >= 0.3
    assert sandbox.drain() and len(receiver.received("/webhooks/fedapay")) == 3

    sandbox.set_knobs(duplicate_notifications=1, notification_delay=0, lose_notifications=True)
    sandbox.decline("fedapay", str(_fedapay_create(sandbox, receiver)["id"]))
    assert sandbox.drain() and len(receiver.received("/webhooks/fedapay")) == 3


def test_retries_after_a_non_2xx_answer(sandbox, receiver):
    receiver.status = 503
    sandbox.notification_retries = 2
    sandbox.approve("fedapay", str(_fedapay_create(sandbox, receiver)["id"]))
    assert sandbox.drain() and len(receiver.received("/webhooks/fedapay")) == 3


def test_outage_reaches_apis_but_not_pages(sandbox, receiver):
    tx = _fedapay_create(sandbox, receiver)
    token = requests.post(f"{sandbox.api_url('fedapay')}/v1/transactions/{tx['id']}/token", headers=FEDAPAY_AUTH)
    sandbox.outage = True
    assert requests.get(f"{sandbox.api_url('fedapay')}/v1/transactions", headers=FEDAPAY_AUTH).status_code == 503
    assert requests.post(f"{sandbox.api_url('cinetpay')}/v2/payment/check", json={}).status_code == 503
    assert requests.get(token.json()["url"]).status_code == 200
    sandbox.outage_drops_connection = True
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sandbox.api_url('fedapay')}/v1/transactions", headers=FEDAPAY_AUTH, timeout=2)


def test_api_latency_delays_api_calls_but_not_pages(sandbox, receiver):
    tx = _fedapay_create(sandbox, receiver)
    token = requests.post(f"{sandbox.api_url('fedapay')}/v1/transactions/{tx['id']}/token", headers=FEDAPAY_AUTH)
    sandbox.set_knobs(api_latency=0.3)
    started = time.monotonic()
    assert requests.get(f"{sandbox.api_url('fedapay')}/v1/transactions/{tx['id']}", headers=FEDAPAY_AUTH).ok
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert requests.get(token.json()["url"]).status_code == 200
    assert time.monotonic() - started < 0.3


def test_control_endpoints(sandbox, receiver):
    tx = _fedapay_create(sandbox, receiver)
    control = f"{sandbox.base_url}/control"
    assert requests.post(f"{control}/fedapay/{tx['id']}/approve").status_code == 204
    assert requests.post(f"{control}/fedapay/{tx['id']}/decline").status_code == 409
    assert requests.post(f"{control}/fedapay/424242/approve").status_code == 404
    assert requests.post(f"{control}/fedapay/{tx['id']}/refund").status_code == 400
    listed = requests.get(f"{control}/fedapay/transactions").json()
    assert [(t["id"], t["status"]) for t in listed] == [(tx["id"], "approved")]
    assert sandbox.transactions("fedapay") == listed

    knobs = requests.post(f"{control}/knobs", json={"duplicate_notifications": 2}).json()
    assert knobs["duplicate_notifications"] == 2
    assert sandbox.duplicate_notifications == 2
    assert requests.post(f"{control}/knobs", json={"nope": 1}).status_code == 400
    assert requests.post(f"{control}/knobs", json={"fedapay_event_key": "kind"}).status_code == 400
    with pytest.raises(ValueError):
        sandbox.approve("fedapay", str(tx["id"]))
    with pytest.raises(KeyError):
        sandbox.approve("fedapay", "424242")


def test_mounted_in_an_app_with_csrf_and_a_public_url(receiver):
    sandbox = ProviderSandbox(public_url="https://kiosque.example/")
    sandbox.add_cinetpay_account(**CINETPAY)
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test")
    CSRFProtect(app)
    app.register_blueprint(sandbox.blueprint(), url_prefix="/sandbox")
    assert sandbox.api_url("cinetpay") == "https://kiosque.example/sandbox/cinetpay"
    answer = app.test_client().post("/sandbox/cinetpay/v2/payment", json=_cinetpay_payment(receiver))
    assert answer.status_code == 200
    assert answer.get_json()["data"]["payment_url"].startswith("https://kiosque.example/sandbox/cinetpay/payment/")


def test_stop_drops_notifications_still_waiting(receiver):
    sandbox = ProviderSandbox().start()
    sandbox.add_feexpay_account(webhook_url=receiver.url("/webhooks/feexpay/tok"), **FEEXPAY)
    sandbox.notification_delay = 30
    reference = _feexpay_push(sandbox).json()["reference"]
    sandbox.approve("feexpay", reference)
    started = time.monotonic()
    sandbox.stop()
    assert sandbox.drain(2) and time.monotonic() - started < 2
    assert receiver.received("/webhooks/feexpay") == []
