"""FeexPay adapter against the sandbox over real HTTP; its webhook is an unsigned hint."""

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
from portal.payments.feexpay import FeexPay, international_phone
from tests.conftest import FEEXPAY, choose, make_order

HOOKS = "/webhooks/feexpay"


@pytest.fixture
def feexpay(sandbox):
    return get_provider("feexpay", FEEXPAY, base_url=sandbox.api_url("feexpay"), timeout=5)


def _push_order(receiver, **changes):
    values = {"phone": "01 97 00 00 00", "network": "mtn", "customer_name": "Koffi Mensah"}
    values.update(changes)
    return make_order(receiver, **values)


def test_registry_and_settings_form():
    assert PROVIDERS["feexpay"] is FeexPay and FeexPay.needs_phone
    assert {f.name: f.secret for f in FeexPay.credential_fields} == {"shop_id": False, "token": True}
    assert not FeexPay(FEEXPAY, base_url="http://unused").notification_is_signed()


@pytest.mark.parametrize(
    ("phone", "network", "expected"),
    [
        ("01 97 00 00 00", "mtn", "2290197000000"),
        ("+229 01 97 00 00 00", "celtiis_bj", "2290197000000"),
        ("00229 0197000000", "moov", "2290197000000"),
        ("90 12 34 56", "togocom_tg", "22890123456"),
        ("07 07 00 00 00", "orange_ci", "2250707000000"),
    ],
)
def test_phone_numbers_get_their_country_code(phone, network, expected):
    assert international_phone(phone, network) == expected


def test_paid_flow(feexpay, sandbox, receiver):
    order = _push_order(receiver, description="Forfait 1 journée (Wi-Fi)")
    session = feexpay.create_checkout(order)
    assert session.redirect_url is None
    (payment,) = sandbox.transactions("feexpay")
    assert payment["phoneNumber"] == "2290197000000" and payment["callback_info"] == order.code
    assert payment["description"] == "Forfait 1 journee Wi Fi"
    assert (payment["first_name"], payment["last_name"]) == ("Koffi", "Mensah")
    assert feexpay.fetch_status(session.provider_ref, order.code).status is PaymentStatus.PENDING

    page = choose(sandbox.phone_url(session.provider_ref), "approve")
    assert page.status_code == 200 and "effectué" in page.text

    (hook,) = receiver.wait_for(HOOKS)
    event = feexpay.parse_notification(hook.body, hook.headers)
    assert (event.provider_ref, event.order_code, event.status_hint) == (
        session.provider_ref,
        order.code,
        PaymentStatus.PAID,
    )
    check = feexpay.fetch_status(session.provider_ref, order.code)
    assert check.status is PaymentStatus.PAID and (check.amount, check.currency) == (500, "XOF")
    assert check.payer_reference == sandbox.transactions("feexpay")[0]["ref_operator"]
    assert check.payer_phone == "2290197000000"


@pytest.mark.parametrize("action", ["decline", "cancel"])
def test_declined_and_cancelled_pushes_fail(feexpay, sandbox, receiver, action):
    order = _push_order(receiver)
    session = feexpay.create_checkout(order)
    choose(sandbox.phone_url(session.provider_ref), action)
    (hook,) = receiver.wait_for(HOOKS)
    assert feexpay.parse_notification(hook.body, hook.headers).status_hint is PaymentStatus.FAILED
    assert feexpay.fetch_status(session.provider_ref, order.code).status is PaymentStatus.FAILED


def test_immediate_outcome_and_wrapped_status(feexpay, sandbox, receiver):
    sandbox.set_knobs(feexpay_push_outcome="SUCCESSFUL", feexpay_status_in_data=True)
    order = _push_order(receiver)
    session = feexpay.create_checkout(order)
    check = feexpay.fetch_status(session.provider_ref, order.code)
    assert check.status is PaymentStatus.PAID and check.amount == 500


def test_phone_and_network_are_required(feexpay, receiver):
    with pytest.raises(ProviderRejected) as no_phone:
        feexpay.create_checkout(make_order(receiver))
    assert no_phone.value.code == "phone"
    with pytest.raises(ProviderRejected) as bad_network:
        feexpay.create_checkout(_push_order(receiver, network="celtiis"))
    assert bad_network.value.code == "network"


def test_feexpay_refusals_carry_its_message(feexpay, receiver):
    with pytest.raises(ProviderRejected) as caught:
        feexpay.create_checkout(_push_order(receiver, amount=50))
    assert caught.value.code == "400" and "amount" in caught.value.provider_message.lower()
    with pytest.raises(ProviderRejected) as unknown:
        feexpay.fetch_status("no-such-reference", "ABC")
    assert unknown.value.code == "404" and unknown.value.provider_message == "Transaction not found"


def test_bad_token_is_rejected(sandbox, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    token = "fp_WRONG_token_7781"
    wrong = get_provider("feexpay", {**FEEXPAY, "token": token}, base_url=sandbox.api_url("feexpay"))
    with pytest.raises(ProviderRejected) as caught:
        wrong.check_credentials()
    assert caught.value.code == "401" and caught.value.provider_message == "Unauthorized"
    with pytest.raises(ProviderRejected):
        wrong.create_checkout(_push_order(receiver))
    get_provider("feexpay", FEEXPAY, base_url=sandbox.api_url("feexpay")).check_credentials()
    assert token not in f"{caught.value} {caught.value!r}" and token not in caplog.text


def test_outage_and_dropped_connection(feexpay, sandbox, receiver):
    sandbox.outage = True
    with pytest.raises(ProviderUnavailable):
        feexpay.create_checkout(_push_order(receiver))
    sandbox.outage_drops_connection = True
    with pytest.raises(ProviderUnavailable):
        feexpay.fetch_status("ref", "ABC")


def test_timeout_is_fast(silent_server):
    slow = get_provider("feexpay", FEEXPAY, base_url=silent_server, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        slow.check_credentials()
    assert time.monotonic() - started < 2


def test_forged_success_is_only_a_hint(feexpay, sandbox, receiver):
    sandbox.forge_signatures = True
    order = _push_order(receiver)
    session = feexpay.create_checkout(order)
    sandbox.decline("feexpay", session.provider_ref)
    (hook,) = receiver.wait_for(HOOKS)
    assert feexpay.parse_notification(hook.body, hook.headers).status_hint is PaymentStatus.PAID
    assert feexpay.fetch_status(session.provider_ref, order.code).status is PaymentStatus.FAILED


def test_duplicates_and_lost_notifications(feexpay, sandbox, receiver):
    sandbox.duplicate_notifications = 2
    session = feexpay.create_checkout(_push_order(receiver))
    sandbox.approve("feexpay", session.provider_ref)
    assert sandbox.drain()
    hooks = receiver.received(HOOKS)
    refs = [feexpay.parse_notification(h.body, h.headers).provider_ref for h in hooks]
    assert refs == [session.provider_ref] * 2
    sandbox.set_knobs(duplicate_notifications=1, lose_notifications=True)
    lost = feexpay.create_checkout(_push_order(receiver))
    sandbox.approve("feexpay", lost.provider_ref)
    assert sandbox.drain() and len(receiver.received(HOOKS)) == 2
    assert feexpay.fetch_status(lost.provider_ref, "ABC").status is PaymentStatus.PAID


@pytest.mark.parametrize(
    ("payload", "ref", "hint"),
    [
        ({"order_id": "r-1", "status": "successful"}, "r-1", PaymentStatus.PAID),
        ({"reference": "r-2", "status": "TIMEOUT"}, "r-2", PaymentStatus.EXPIRED),
        ({"reference": "r-3", "status": "CANCELLED"}, "r-3", PaymentStatus.CANCELLED),
        ({"reference": "r-4", "status": "WHATEVER"}, "r-4", None),
        ({"reference": "r-5"}, "r-5", None),
    ],
)
def test_webhook_variants(payload, ref, hint):
    event = FeexPay(FEEXPAY, base_url="http://unused").parse_notification(json.dumps(payload).encode(), {})
    assert (event.provider_ref, event.status_hint) == (ref, hint)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff", b"[]", b'"x"', b"{}", b'{"reference": null}', b'{"reference": {"a": 1}}', b"[" * 5000],
)
def test_malformed_bodies(body):
    with pytest.raises(InvalidNotification):
        FeexPay(FEEXPAY, base_url="http://unused").parse_notification(body, {})


def test_secrets_stay_out_of_errors_and_logs(feexpay, sandbox, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    sandbox.outage = True
    errors = []
    for call in (lambda: feexpay.create_checkout(_push_order(receiver)), feexpay.check_credentials):
        with pytest.raises(PaymentError) as caught:
            call()
        errors.append(caught.value)
    text = " ".join(f"{e} {e!r} {e.provider_message}" for e in errors) + caplog.text
    assert errors and FEEXPAY["token"] not in text


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=300) | st.builds(lambda v: json.dumps(v).encode(), st.dictionaries(
        st.sampled_from(["reference", "order_id", "status", "callback_info"]),
        st.none() | st.integers() | st.text(max_size=12) | st.lists(st.integers(), max_size=2),
    )),
    headers=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=3),
)
def test_arbitrary_requests_are_parsed_or_refused(body, headers):
    try:
        event = FeexPay(FEEXPAY, base_url="http://unused").parse_notification(body, headers)
    except InvalidNotification:
        return
    assert isinstance(event.provider_ref, str) and event.provider_ref
