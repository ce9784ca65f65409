"""CinetPay adapter against the sandbox over real HTTP, and its IPN verification."""

import logging
import time
from urllib.parse import urlencode

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
from portal.payments.cinetpay import CinetPay
from tests.conftest import CINETPAY, choose, follow_form, make_order
from tests.provider_signing import CINETPAY_SIGNED_FIELDS, cinetpay_x_token

HOOKS = "/webhooks/cinetpay"


@pytest.fixture
def cinetpay(sandbox):
    return get_provider("cinetpay", CINETPAY, base_url=sandbox.api_url("cinetpay"), timeout=5)


def _ipn(**changes: str) -> dict[str, str]:
    fields = {name: "" for name in CINETPAY_SIGNED_FIELDS}
    fields.update(cpm_site_id=CINETPAY["site_id"], cpm_trans_id="ABC123", cpm_amount="500", cpm_currency="XOF")
    fields.update(changes)
    return fields


def test_registry_and_settings_form():
    assert PROVIDERS["cinetpay"] is CinetPay and not CinetPay.needs_phone
    assert {f.name: f.secret for f in CinetPay.credential_fields} == {
        "apikey": True,
        "site_id": False,
        "secret_key": True,
    }


def test_paid_flow(cinetpay, sandbox, receiver):
    order = make_order(receiver, phone="0707000000", description="Forfait #1 & co")
    session = cinetpay.create_checkout(order)
    assert session.provider_ref == order.code and session.redirect_url.startswith(sandbox.base_url)
    (payment,) = sandbox.transactions("cinetpay")
    assert payment["channels"] == "MOBILE_MONEY" and payment["notify_url"] == order.notify_url
    assert "#" not in payment["description"] and "&" not in payment["description"]
    assert cinetpay.fetch_status(session.provider_ref, order.code).status is PaymentStatus.PENDING

    page = choose(session.redirect_url, "approve")
    assert follow_form(session.redirect_url, page).status_code == 200
    (returned,) = receiver.received(f"/o/{order.code}")
    assert returned.method == "POST" and returned.form["transaction_id"] == order.code

    (ipn,) = receiver.wait_for(HOOKS)
    event = cinetpay.parse_notification(ipn.body, ipn.headers)
    assert (event.provider_ref, event.order_code, event.status_hint) == (order.code, order.code, None)
    # The app may hand over the parsed form instead of re-reading the body.
    assert cinetpay.parse_notification(b"", ipn.headers, form=ipn.form).order_code == order.code

    check = cinetpay.fetch_status(session.provider_ref, order.code)
    assert check.status is PaymentStatus.PAID and (check.amount, check.currency) == (500, "XOF")
    assert check.payer_reference == sandbox.transactions("cinetpay")[0]["operator_id"]
    assert check.payer_phone == "2250707000000"


@pytest.mark.parametrize(
    ("action", "status"), [("decline", PaymentStatus.FAILED), ("cancel", PaymentStatus.CANCELLED)]
)
def test_declined_and_cancelled(cinetpay, receiver, action, status):
    order = make_order(receiver)
    session = cinetpay.create_checkout(order)
    choose(session.redirect_url, action)
    (ipn,) = receiver.wait_for(HOOKS)
    assert cinetpay.parse_notification(ipn.body, ipn.headers).provider_ref == order.code
    assert cinetpay.fetch_status(order.code, order.code).status is status


def test_waiting_ipn_stays_pending(cinetpay, receiver):
    order = make_order(receiver)
    session = cinetpay.create_checkout(order)
    choose(session.redirect_url, "pending")
    (ipn,) = receiver.wait_for(HOOKS)
    assert ipn.form["cpm_error_message"] == "WAITING_CUSTOMER_PAYMENT"
    assert cinetpay.parse_notification(ipn.body, ipn.headers).order_code == order.code
    assert cinetpay.fetch_status(order.code, order.code).status is PaymentStatus.PENDING


@pytest.mark.parametrize("amount", [123, 95, 0])
def test_amount_rules_are_checked_before_calling(cinetpay, sandbox, receiver, amount):
    with pytest.raises(ProviderRejected) as caught:
        cinetpay.create_checkout(make_order(receiver, amount=amount))
    assert caught.value.code == "amount" and str(amount) in str(caught.value)
    assert ("multiple of 5" in str(caught.value)) == (amount >= 100)
    assert sandbox.transactions("cinetpay") == []


def test_bad_keys_are_rejected_with_cinetpay_message(sandbox, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    apikey = "cp-apikey-WRONG-5521"
    wrong = get_provider("cinetpay", {**CINETPAY, "apikey": apikey}, base_url=sandbox.api_url("cinetpay"))
    with pytest.raises(ProviderRejected) as caught:
        wrong.create_checkout(make_order(receiver))
    assert caught.value.code == "609" and caught.value.provider_message.startswith("AUTH_NOT_FOUND")
    other_site = get_provider("cinetpay", {**CINETPAY, "site_id": "1"}, base_url=sandbox.api_url("cinetpay"))
    with pytest.raises(ProviderRejected, match="613"):
        other_site.check_credentials()
    with pytest.raises(ProviderRejected):
        wrong.check_credentials()
    assert apikey not in f"{caught.value} {caught.value!r}" and apikey not in caplog.text


def test_good_keys_pass_the_credential_check(cinetpay):
    cinetpay.check_credentials()


def test_unknown_transaction_is_an_error_not_a_state(cinetpay):
    with pytest.raises(ProviderRejected) as caught:
        cinetpay.fetch_status("NEVERSEEN", "NEVERSEEN")
    assert caught.value.provider_message


def test_outage_and_dropped_connection(cinetpay, sandbox, receiver):
    sandbox.outage = True
    with pytest.raises(ProviderUnavailable):
        cinetpay.create_checkout(make_order(receiver))
    sandbox.outage_drops_connection = True
    with pytest.raises(ProviderUnavailable):
        cinetpay.fetch_status("ABC", "ABC")


def test_timeout_is_fast(silent_server):
    slow = get_provider("cinetpay", CINETPAY, base_url=silent_server, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        slow.fetch_status("ABC", "ABC")
    assert time.monotonic() - started < 2


def test_forged_x_token_from_the_sandbox(cinetpay, sandbox, receiver):
    sandbox.forge_signatures = True
    session = cinetpay.create_checkout(make_order(receiver))
    sandbox.approve("cinetpay", session.provider_ref)
    (ipn,) = receiver.wait_for(HOOKS)
    with pytest.raises(InvalidNotification, match="x-token"):
        cinetpay.parse_notification(ipn.body, ipn.headers)


def test_x_token_covers_every_field():
    adapter = CinetPay(CINETPAY, base_url="http://unused")
    fields = _ipn(cpm_designation="Forfait 1 jour")
    token = cinetpay_x_token(CINETPAY["secret_key"], fields)
    event = adapter.parse_notification(urlencode(fields).encode(), {"X-TOKEN": token.upper()})
    assert event.order_code == "ABC123"
    for name in CINETPAY_SIGNED_FIELDS:
        tampered = {**fields, name: fields[name] + "9"}
        with pytest.raises(InvalidNotification):
            adapter.parse_notification(urlencode(tampered).encode(), {"x-token": token})
    with pytest.raises(InvalidNotification, match="missing"):
        adapter.parse_notification(urlencode(fields).encode(), {})


def test_short_ipns_are_accepted(cinetpay, sandbox, receiver):
    for variant in ("no_error_message", "ids_only"):
        sandbox.cinetpay_ipn_fields = variant
        order = make_order(receiver)
        cinetpay.create_checkout(order)
        sandbox.approve("cinetpay", order.code)
        assert sandbox.drain()
        ipn = receiver.received(HOOKS)[-1]
        assert cinetpay.parse_notification(ipn.body, ipn.headers).order_code == order.code


def test_another_site_is_refused():
    adapter = CinetPay(CINETPAY, base_url="http://unused")
    fields = _ipn(cpm_site_id="999")
    token = cinetpay_x_token(CINETPAY["secret_key"], fields)
    with pytest.raises(InvalidNotification, match="site_id"):
        adapter.parse_notification(urlencode(fields).encode(), {"x-token": token})


@pytest.mark.parametrize("body", [b"\xff\xfe=1", b"a=%zz&&=", b"&&&", b"=", b"cpm_trans_id", b""])
def test_malformed_forms(body):
    adapter = CinetPay(CINETPAY, base_url="http://unused")
    token = cinetpay_x_token(CINETPAY["secret_key"], {})
    with pytest.raises(InvalidNotification):
        adapter.parse_notification(body, {"x-token": token})


def test_duplicates_all_verify(cinetpay, sandbox, receiver):
    sandbox.duplicate_notifications = 4
    order = make_order(receiver)
    cinetpay.create_checkout(order)
    sandbox.approve("cinetpay", order.code)
    assert sandbox.drain()
    ipns = receiver.received(HOOKS)
    assert len(ipns) == 4
    assert {cinetpay.parse_notification(i.body, i.headers).order_code for i in ipns} == {order.code}


def test_secrets_stay_out_of_errors_and_logs(cinetpay, sandbox, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    sandbox.outage = True
    calls = (
        lambda: cinetpay.create_checkout(make_order(receiver)),
        cinetpay.check_credentials,
        lambda: cinetpay.parse_notification(b"cpm_trans_id=1", {"x-token": "00"}),
    )
    errors = []
    for call in calls:
        with pytest.raises(PaymentError) as caught:
            call()
        errors.append(caught.value)
    text = " ".join(f"{e} {e!r} {e.provider_message}" for e in errors) + caplog.text
    assert CINETPAY["apikey"] not in text and CINETPAY["secret_key"] not in text


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300), headers=st.dictionaries(st.text(max_size=20), st.text(max_size=80)))
def test_arbitrary_requests_only_raise_invalid_notification(body, headers):
    adapter = CinetPay(CINETPAY, base_url="http://unused")
    with pytest.raises(InvalidNotification):
        adapter.parse_notification(body, headers)


@settings(max_examples=150, deadline=None)
@given(fields=st.dictionaries(st.sampled_from(CINETPAY_SIGNED_FIELDS) | st.text(max_size=9), st.text(max_size=20)))
def test_signed_arbitrary_forms_are_parsed_or_refused(fields):
    adapter = CinetPay(CINETPAY, base_url="http://unused")
    headers = {"x-token": cinetpay_x_token(CINETPAY["secret_key"], fields)}
    try:
        event = adapter.parse_notification(urlencode(fields).encode(), headers)
    except InvalidNotification:
        return
    assert event.order_code == fields["cpm_trans_id"] and fields["cpm_site_id"] == CINETPAY["site_id"]
