"""FedaPay adapter against the sandbox over real HTTP, and its webhook verification."""

import json
import logging
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.payments import PROVIDERS, get_provider
from portal.payments.base import (
    InvalidNotification,
    PaymentError,
    PaymentStatus,
    ProviderRejected,
    ProviderUnavailable,
)
from portal.payments.fedapay import FedaPay
from tests.conftest import FEDAPAY, choose, make_order
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


def test_registry_and_settings_form():
    assert PROVIDERS["fedapay"] is FedaPay and not FedaPay.needs_phone
    fields = {f.name: f for f in FedaPay.credential_fields}
    assert list(fields) == ["secret_key", "webhook_secret", "public_key"]
    assert fields["secret_key"].secret and fields["webhook_secret"].secret and not fields["webhook_secret"].required
    assert not fields["public_key"].secret and not fields["public_key"].required
    with pytest.raises(KeyError):
        get_provider("paypal", {}, base_url="http://x")
    with pytest.raises(ProviderRejected, match="Clé secrète"):
        get_provider("fedapay", {"webhook_secret": "wh_x"}, base_url="http://x")
    # Without its webhook secret (FedaPay gives it after the URL is declared) notifications are refused.
    unsigned = get_provider("fedapay", {"secret_key": "sk_sandbox_x"}, base_url="http://x")
    with pytest.raises(InvalidNotification, match="no webhook secret"):
        unsigned.parse_notification(b"{}", {"X-FEDAPAY-SIGNATURE": "t=1,s=00"})


def test_paid_flow(fedapay, sandbox, receiver):
    order = make_order(receiver, phone="+229 01 97 00 00 00", customer_name="Awa Koné")
    session = fedapay.create_checkout(order)
    assert session.redirect_url and session.redirect_url.startswith(sandbox.base_url)
    (tx,) = sandbox.transactions("fedapay")
    assert tx["custom_metadata"] == {"order_code": order.code} and tx["callback_url"] == order.return_url
    assert tx["currency"]["iso"] == "XOF" and tx["amount"] == 500
    assert fedapay.fetch_status(session.provider_ref, order.code).status is PaymentStatus.PENDING

    back = choose(session.redirect_url, "approve")
    assert back.status_code == 302 and back.headers["Location"].startswith(order.return_url + "?id=")

    (hook,) = receiver.wait_for(HOOKS)
    event = fedapay.parse_notification(hook.body, hook.headers)
    assert event.provider_ref == session.provider_ref and event.order_code == order.code
    assert event.status_hint is PaymentStatus.PAID and event.event_id

    check = fedapay.fetch_status(session.provider_ref, order.code)
    assert check.status is PaymentStatus.PAID
    assert (check.amount, check.currency) == (500, "XOF")
    assert check.payer_reference == tx["reference"] and check.payer_phone == "+2290197000000"


@pytest.mark.parametrize(
    ("action", "status"), [("decline", PaymentStatus.FAILED), ("cancel", PaymentStatus.CANCELLED)]
)
def test_declined_and_cancelled(fedapay, receiver, action, status):
    order = make_order(receiver)
    session = fedapay.create_checkout(order)
    assert choose(session.redirect_url, action).status_code == 302
    (hook,) = receiver.wait_for(HOOKS)
    assert fedapay.parse_notification(hook.body, hook.headers).status_hint is status
    assert fedapay.fetch_status(session.provider_ref, order.code).status is status


def test_transaction_of_another_order_is_refused(fedapay, receiver):
    session = fedapay.create_checkout(make_order(receiver))
    with pytest.raises(ProviderRejected, match="another order"):
        fedapay.fetch_status(session.provider_ref, "SOMEONEELSE")


def test_bad_keys_are_rejected_with_fedapay_message(sandbox, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "sk_sandbox_NotRegistered42"
    wrong = get_provider("fedapay", {**FEDAPAY, "secret_key": secret}, base_url=sandbox.api_url("fedapay"))
    with pytest.raises(ProviderRejected) as caught:
        wrong.check_credentials()
    assert caught.value.code == "401" and caught.value.provider_message == "Unauthenticated."
    with pytest.raises(ProviderRejected):
        wrong.create_checkout(make_order(receiver))
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert not [r for r in caplog.records if secret in r.getMessage()]


def test_validation_errors_carry_the_fields(fedapay, receiver):
    with pytest.raises(ProviderRejected) as caught:
        fedapay.create_checkout(make_order(receiver, currency="USD"))
    assert caught.value.code == "422" and "currency" in caught.value.provider_message


def test_live_key_on_sandbox_host_is_rejected(sandbox):
    sandbox.add_fedapay_account(secret_key="sk_live_abc", public_key="pk_live_a", webhook_secret="w", webhook_url="")
    credentials = {**FEDAPAY, "secret_key": "sk_live_abc"}
    with pytest.raises(ProviderRejected, match="live"):
        get_provider("fedapay", credentials, base_url=sandbox.api_url("fedapay")).check_credentials()
    get_provider("fedapay", credentials, base_url=sandbox.api_url("fedapay", "live")).check_credentials()


def test_outage_and_dropped_connection(fedapay, sandbox, receiver):
    sandbox.outage = True
    with pytest.raises(ProviderUnavailable) as caught:
        fedapay.create_checkout(make_order(receiver))
    assert caught.value.code == "503"
    sandbox.outage_drops_connection = True
    with pytest.raises(ProviderUnavailable, match="ConnectionError"):
        fedapay.fetch_status("1", "ABC")


def test_timeout_is_fast(silent_server):
    slow = get_provider("fedapay", FEDAPAY, base_url=silent_server, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="Timeout"):
        slow.check_credentials()
    assert time.monotonic() - started < 2


def test_forged_and_stale_signatures_from_the_sandbox(fedapay, sandbox, receiver):
    sandbox.forge_signatures = True
    first = fedapay.create_checkout(make_order(receiver))
    sandbox.approve("fedapay", first.provider_ref)
    (forged,) = receiver.wait_for(HOOKS)
    with pytest.raises(InvalidNotification, match="matching the expected signature"):
        fedapay.parse_notification(forged.body, forged.headers)

    sandbox.set_knobs(forge_signatures=False, stale_signatures=True)
    second = fedapay.create_checkout(make_order(receiver))
    sandbox.approve("fedapay", second.provider_ref)
    stale = receiver.wait_for(HOOKS, 2)[1]
    with pytest.raises(InvalidNotification, match="tolerance"):
        fedapay.parse_notification(stale.body, stale.headers)


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
    assert fedapay.parse_notification(hook.body, hook.headers).status_hint is PaymentStatus.CANCELLED
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


def test_duplicates_all_verify(fedapay, sandbox, receiver):
    sandbox.duplicate_notifications = 3
    session = fedapay.create_checkout(make_order(receiver))
    sandbox.approve("fedapay", session.provider_ref)
    assert sandbox.drain()
    hooks = receiver.received(HOOKS)
    assert len(hooks) == 3
    assert {fedapay.parse_notification(h.body, h.headers).provider_ref for h in hooks} == {session.provider_ref}


def test_secrets_stay_out_of_errors_and_logs(fedapay, sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    errors = []
    sandbox.outage = True
    forged = {"X-FEDAPAY-SIGNATURE": "t=1,s=0"}
    for call in (fedapay.check_credentials, lambda: fedapay.parse_notification(b"{}", forged)):
        with pytest.raises(PaymentError) as caught:
            call()
        errors.append(caught.value)
    text = " ".join(f"{e} {e!r} {e.provider_message}" for e in errors) + caplog.text
    assert FEDAPAY["secret_key"] not in text and FEDAPAY["webhook_secret"] not in text


def test_a_key_echoed_by_the_provider_is_scrubbed(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.status = 401
    receiver.body = json.dumps({"message": f"Unknown key {FEDAPAY['secret_key']}"})
    adapter = get_provider("fedapay", FEDAPAY, base_url=receiver.url(""))
    with pytest.raises(ProviderRejected) as caught:
        adapter.check_credentials()
    assert caught.value.provider_message == "Unknown key ***"
    assert FEDAPAY["secret_key"] not in f"{caught.value} {caught.value!r}" + caplog.text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
header_maps = st.dictionaries(st.text(max_size=30), st.text(max_size=80), max_size=4)


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300), headers=header_maps)
def test_arbitrary_requests_only_raise_invalid_notification(body, headers):
    adapter = FedaPay(FEDAPAY, base_url="http://unused")
    with pytest.raises(InvalidNotification):
        adapter.parse_notification(body, headers)


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
