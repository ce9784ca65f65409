"""What only FedaPay does: its webhook secret, the signature header and its tolerance clock, event
shapes, another order's transaction, its validation errors and separate test host.

What every adapter does (paid, declined and cancelled payments, refused keys, outage, timeout,
duplicate and forged notifications, secrets) is in tests/test_payments_contract.py.
"""

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.payments import get_provider
from portal.payments.base import InvalidNotification, PaymentStatus, ProviderRejected
from portal.payments.fedapay import FedaPay
from tests.conftest import FEDAPAY, make_order
from tests.provider_signing import fedapay_signature

HOOKS = "/webhooks/fedapay"


@pytest.fixture
def fedapay(sandbox):
    return get_provider("fedapay", FEDAPAY, base_url=sandbox.api_url("fedapay"), timeout=5)


def _event(status: str, tx_id: int = 7, code: str = "ABC", key: str = "name") -> bytes:
    entity = {"id": tx_id, "status": status, "custom_metadata": {"order_code": code}}
    return json.dumps({"id": 99, key: f"transaction.{status}", "object": "transaction", "entity": entity}).encode()


def _signed(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    when = int(time.time()) if timestamp is None else timestamp
    return {"X-FEDAPAY-SIGNATURE": fedapay_signature(FEDAPAY["webhook_secret"], body, when)}


def test_only_the_secret_key_is_required():
    fields = {f.name: f for f in FedaPay.credential_fields}
    assert list(fields) == ["secret_key", "webhook_secret", "public_key"]
    assert fields["secret_key"].required
    assert not fields["webhook_secret"].required and not fields["public_key"].required
    # Without its webhook secret (FedaPay gives it after the URL is declared) notifications are refused.
    unsigned = get_provider("fedapay", {"secret_key": "sk_sandbox_x"}, base_url="http://x")
    with pytest.raises(InvalidNotification, match="no webhook secret"):
        unsigned.parse_notification(b"{}", {"X-FEDAPAY-SIGNATURE": "t=1,s=00"})


def test_transaction_of_another_order_is_refused(fedapay, receiver):
    session = fedapay.create_checkout(make_order(receiver))
    with pytest.raises(ProviderRejected, match="another order"):
        fedapay.fetch_status(session.provider_ref, "SOMEONEELSE")


def test_validation_errors_carry_the_fields(fedapay, receiver):
    with pytest.raises(ProviderRejected) as caught:
        fedapay.create_checkout(make_order(receiver, currency="USD"))
    assert caught.value.code == "422" and "currency" in caught.value.provider_message


@pytest.mark.parametrize(
    ("refusal", "customer"),
    [
        (None, {"firstname": "Awa", "lastname": "Koné", "phone_number": {"number": "+2290197000000", "country": "bj"}}),
        ("with_phone", {"firstname": "Awa", "lastname": "Koné"}),  # tried again without the phone
        ("without_email", None),  # then without a customer: an email is never invented
    ],
)
def test_a_refused_customer_is_tried_smaller(fedapay, sandbox, receiver, refusal, customer):
    sandbox.set_knobs(fedapay_refuse_customer=refusal)
    session = fedapay.create_checkout(make_order(receiver, phone="+2290197000000", customer_name="Awa Koné"))
    (payment,) = sandbox.transactions("fedapay")
    assert str(payment["id"]) == session.provider_ref and session.redirect_url
    kept = payment["customer"]
    assert ({k: v for k, v in kept.items() if k not in ("klass", "id")} if kept else None) == customer


def test_a_buyer_who_gave_only_a_phone_pays_without_a_customer(fedapay, sandbox, receiver):
    sandbox.set_knobs(fedapay_refuse_customer="with_phone")
    fedapay.create_checkout(make_order(receiver, phone="+2290197000000"))
    assert sandbox.api_calls["fedapay_create"] == 2
    (payment,) = sandbox.transactions("fedapay")
    assert payment["customer"] is None


def test_a_refusal_not_about_the_customer_is_not_tried_again(fedapay, sandbox, receiver):
    with pytest.raises(ProviderRejected) as caught:
        fedapay.create_checkout(make_order(receiver, phone="+2290197000000", currency="USD"))
    assert caught.value.code == "422" and "currency" in caught.value.provider_message
    assert sandbox.api_calls["fedapay_create"] == 1


def test_live_key_on_sandbox_host_is_rejected(sandbox):
    sandbox.add_fedapay_account(secret_key="sk_live_abc", public_key="pk_live_a", webhook_secret="w", webhook_url="")
    credentials = {**FEDAPAY, "secret_key": "sk_live_abc"}
    with pytest.raises(ProviderRejected, match="live"):
        get_provider("fedapay", credentials, base_url=sandbox.api_url("fedapay")).check_credentials()
    get_provider("fedapay", credentials, base_url=sandbox.api_url("fedapay", "live")).check_credentials()


def test_stale_signatures_from_the_sandbox(fedapay, sandbox, receiver):
    sandbox.stale_signatures = True
    session = fedapay.create_checkout(make_order(receiver))
    sandbox.approve("fedapay", session.provider_ref)
    (stale,) = receiver.wait_for(HOOKS)
    with pytest.raises(InvalidNotification, match="tolerance") as caught:
        fedapay.parse_notification(stale.body, stale.headers)
    assert caught.value.code == "timestamp"


def test_tolerance_follows_the_injected_clock():
    now = 1_700_000_000.0
    adapter = FedaPay(FEDAPAY, base_url="http://unused", clock=lambda: now)
    body = _event("approved")
    assert adapter.parse_notification(body, _signed(body, int(now) - 299)).status_hint is PaymentStatus.PAID
    assert adapter.parse_notification(body, _signed(body, int(now) + 299)).provider_ref == "7"
    for skew in (-301, 301):
        with pytest.raises(InvalidNotification, match="tolerance"):
            adapter.parse_notification(body, _signed(body, int(now) + skew))


def test_signature_header_variants():
    adapter = FedaPay(FEDAPAY, base_url="http://unused")
    body = _event("declined")
    good = _signed(body)["X-FEDAPAY-SIGNATURE"]
    t, s = good.split(",")
    # Several s= entries: any match is enough; the header name is case-insensitive.
    event = adapter.parse_notification(body, {"x-fedapay-signature": f"{t},s=00ff,{s}"})
    assert event.status_hint is PaymentStatus.FAILED
    for bad in ("", s, t, f"t=abc,{s}", f"{t},s=", f"{t},v1=abc"):
        with pytest.raises(InvalidNotification):
            adapter.parse_notification(body, {"X-FEDAPAY-SIGNATURE": bad})
    with pytest.raises(InvalidNotification, match="missing"):
        adapter.parse_notification(body, {})
    with pytest.raises(InvalidNotification):  # the body was changed after signing
        adapter.parse_notification(body.replace(b"declined", b"approved"), {"X-FEDAPAY-SIGNATURE": good})


def test_type_key_and_non_transaction_events(sandbox, fedapay, receiver):
    sandbox.fedapay_event_key = "type"
    session = fedapay.create_checkout(make_order(receiver))
    sandbox.cancel("fedapay", session.provider_ref)
    (hook,) = receiver.wait_for(HOOKS)
    event = fedapay.parse_notification(hook.body, hook.headers)
    assert event.status_hint is PaymentStatus.CANCELLED and event.event_id == str(json.loads(hook.body)["id"])
    customer = json.dumps({"name": "customer.created", "object": "customer", "entity": {"id": 3}}).encode()
    event = fedapay.parse_notification(customer, _signed(customer))
    assert (event.provider_ref, event.order_code, event.status_hint) == (None, None, None)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe", b"[]", b"null", b'{"entity": {"id": 1}}', b'{"name": "transaction.approved"}',
     b'{"name": "transaction.approved", "entity": {"id": [1]}}', b"[" * 5000],
)
def test_malformed_bodies(body):
    adapter = FedaPay(FEDAPAY, base_url="http://unused")
    with pytest.raises(InvalidNotification):
        adapter.parse_notification(body, _signed(body))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    payload=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"name": st.sampled_from(["transaction.approved", "transaction.updated", "customer.x"]) | st.text()},
            optional={"entity": json_values, "id": json_values, "type": json_values},
        ),
    )
)
def test_signed_arbitrary_json_is_parsed_or_refused(payload):
    adapter = FedaPay(FEDAPAY, base_url="http://unused")
    body = json.dumps(payload).encode()
    try:
        event = adapter.parse_notification(body, _signed(body))
    except InvalidNotification:
        return
    assert event.provider_ref is None or isinstance(event.provider_ref, str)
