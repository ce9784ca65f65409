"""What only FeexPay does: phone numbers in international form, the push request's fields, an
outcome known at once, its refusals, and the shapes of its unsigned webhook.

What every adapter does (paid, declined and cancelled payments, phone and network checks, refused
keys, outage, timeout, duplicate, lost and forged notifications, secrets) is in
tests/test_payments_contract.py.
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.payments import get_provider
from portal.payments.base import InvalidNotification, PaymentStatus, ProviderRejected
from portal.payments.feexpay import FeexPay, international_phone
from tests.conftest import FEEXPAY, make_order

HOOKS = "/webhooks/feexpay"


@pytest.fixture
def feexpay(sandbox):
    return get_provider("feexpay", FEEXPAY, base_url=sandbox.api_url("feexpay"), timeout=5)


def _push_order(receiver, **changes):
    values = {"phone": "01 97 00 00 00", "network": "mtn", "customer_name": "Koffi Mensah"}
    values.update(changes)
    return make_order(receiver, **values)


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


def test_push_request_fields(feexpay, sandbox, receiver):
    order = _push_order(receiver, description="Forfait 1 journée (Wi-Fi)")
    feexpay.create_checkout(order)
    (payment,) = sandbox.transactions("feexpay")
    assert payment["phoneNumber"] == "2290197000000" and payment["callback_info"] == order.code
    # Only letters, digits and spaces (MTN's rule), accents folded rather than dropped.
    assert payment["description"] == "Forfait 1 journee Wi Fi"
    assert (payment["first_name"], payment["last_name"]) == ("Koffi", "Mensah")


def test_immediate_outcome_and_wrapped_status(feexpay, sandbox, receiver):
    sandbox.set_knobs(feexpay_push_outcome="SUCCESSFUL", feexpay_status_in_data=True)
    order = _push_order(receiver)
    session = feexpay.create_checkout(order)
    check = feexpay.fetch_status(session.provider_ref, order.code)
    assert check.status is PaymentStatus.PAID and check.amount == 500


def test_feexpay_refusals_carry_its_message(feexpay, receiver):
    with pytest.raises(ProviderRejected) as caught:
        feexpay.create_checkout(_push_order(receiver, amount=50))
    assert caught.value.code == "400" and "amount" in caught.value.provider_message.lower()
    with pytest.raises(ProviderRejected) as unknown:
        feexpay.fetch_status("no-such-reference", "ABC")
    assert unknown.value.code == "404" and unknown.value.provider_message == "Transaction not found"


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


@settings(max_examples=200, deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(["reference", "order_id", "status", "callback_info"]),
        st.none() | st.integers() | st.text(max_size=12) | st.lists(st.integers(), max_size=2),
    ),
)
def test_arbitrary_webhook_fields_are_read_or_refused(payload):
    references = [payload.get("reference"), payload.get("order_id")]
    # A reference holding NUL is none: no provider sends one, and databases refuse it.
    usable = [r for r in references if isinstance(r, int) or (isinstance(r, str) and r and "\x00" not in r)]
    try:
        event = FeexPay(FEEXPAY, base_url="http://unused").parse_notification(json.dumps(payload).encode(), {})
    except InvalidNotification:
        assert not usable  # refused only when there is no reference to check
        return
    assert event.provider_ref == str(usable[0])
