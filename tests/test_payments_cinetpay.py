"""What only CinetPay does: its checkout request and POST return, amount rules, site_id, the IPN
that carries no status, and the x-token over sixteen form fields.

What every adapter does (paid, declined and cancelled payments, refused keys, outage, timeout,
duplicate and forged notifications, secrets) is in tests/test_payments_contract.py.
"""

from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.payments import get_provider
from portal.payments.base import InvalidNotification, PaymentStatus, ProviderRejected
from portal.payments.cinetpay import CinetPay
from tests.conftest import CINETPAY, choose, follow_form, make_order
from tests.provider_signing import CINETPAY_SIGNED_FIELDS, cinetpay_x_token
from tests.support import deliver

HOOKS = "/webhooks/cinetpay"


@pytest.fixture
def cinetpay(sandbox):
    return get_provider("cinetpay", CINETPAY, base_url=sandbox.api_url("cinetpay"), timeout=5)


def _ipn(**changes: str) -> dict[str, str]:
    fields = {name: "" for name in CINETPAY_SIGNED_FIELDS}
    fields.update(cpm_site_id=CINETPAY["site_id"], cpm_trans_id="ABC123", cpm_amount="500", cpm_currency="XOF")
    fields.update(changes)
    return fields


def test_checkout_asks_for_mobile_money_and_the_buyer_returns_by_post(cinetpay, sandbox, receiver):
    order = make_order(receiver, description="Forfait #1 & co")
    session = cinetpay.create_checkout(order)
    assert session.provider_ref == order.code  # CinetPay keys payments by our code
    (payment,) = sandbox.transactions("cinetpay")
    assert payment["channels"] == "MOBILE_MONEY" and payment["notify_url"] == order.notify_url
    assert "#" not in payment["description"] and "&" not in payment["description"]

    page = choose(session.redirect_url, "approve")
    assert follow_form(session.redirect_url, page).status_code == 200
    (returned,) = receiver.received(f"/o/{order.code}")
    assert returned.method == "POST" and returned.form["transaction_id"] == order.code
    # The app may hand over the parsed form instead of the body.
    (ipn,) = receiver.wait_for(HOOKS)
    assert cinetpay.parse_notification(b"", ipn.headers, form=ipn.form).order_code == order.code


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


def test_an_unknown_site_id_is_refused(sandbox, receiver):
    other_site = get_provider("cinetpay", {**CINETPAY, "site_id": "1"}, base_url=sandbox.api_url("cinetpay"))
    with pytest.raises(ProviderRejected, match="613") as caught:
        other_site.check_credentials()
    assert caught.value.provider_message.startswith("ERROR_SITE_ID_NOTVALID")
    with pytest.raises(ProviderRejected, match="613"):
        other_site.create_checkout(make_order(receiver))


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


def test_a_multipart_ipn_is_read_from_its_parsed_form(cinetpay, sandbox, receiver):
    """CinetPay does not say how its "form values" are encoded: the app parses both encodings."""
    sandbox.set_knobs(cinetpay_ipn_encoding="multipart")
    order = make_order(receiver)
    cinetpay.create_checkout(order)
    sandbox.approve("cinetpay", order.code)
    (ipn,) = receiver.wait_for(HOOKS)
    assert ipn.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert deliver(cinetpay, ipn).order_code == order.code
    with pytest.raises(InvalidNotification):  # the raw body is no urlencoded form
        cinetpay.parse_notification(ipn.body, ipn.headers)


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
