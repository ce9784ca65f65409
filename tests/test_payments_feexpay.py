"""What only FeexPay does: numbers in international digits, the request's fields, a push, a payment
page or a payment code first depending on the network and on FeexPay's answer, an outcome known
at once, its refusals naming the buyer's input, a currency it never states, and the shapes of its
status answers and unsigned webhook.

What every adapter does (paid, declined and cancelled payments, phone and network checks, refused
keys, outage, lost answers, timeout, duplicate, lost and forged notifications, secrets) is in
tests/test_payments_contract.py.
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.payments import get_provider
from portal.payments.base import InvalidNotification, KeysRefused, PaymentStatus, ProviderRejected
from portal.payments.feexpay import NETWORKS, FeexPay
from tests.conftest import FEEXPAY, choose, make_order

HOOKS = "/webhooks/feexpay"


@pytest.fixture
def feexpay(sandbox):
    return get_provider("feexpay", FEEXPAY, base_url=sandbox.api_url("feexpay"), timeout=5)


def _push_order(receiver, **changes):
    values = {"phone": "01 97 00 00 00", "network": "mtn", "customer_name": "Koffi Mensah"}
    values.update(changes)
    return make_order(receiver, **values)


def test_the_default_api_is_v2():
    assert FeexPay.api_urls == {"live": "https://api-v2.feexpay.me"}


@pytest.mark.parametrize(
    ("phone", "network", "sent"),
    [
        ("+2290197000000", "mtn", "2290197000000"),
        ("01 97 00 00 00", "mtn", "2290197000000"),
        ("97 00 00 00", "moov", "2290197000000"),  # Benin's old eight digits gain their 01
        ("00229 0197000000", "celtiis_bj", "2290197000000"),
        ("90 12 34 56", "togocom_tg", "22890123456"),
        ("07 07 00 00 00", "mtn_ci", "2250707000000"),
        ("+242 06 123 4567", "mtn_cg", "242061234567"),  # Congo keeps its leading 0
    ],
)
def test_numbers_go_as_international_digits(feexpay, sandbox, receiver, phone, network, sent):
    feexpay.create_checkout(_push_order(receiver, phone=phone, network=network))
    (payment,) = sandbox.transactions("feexpay")
    assert payment["phoneNumber"] == sent


@pytest.mark.parametrize(("phone", "network"), [("0707000000", "mtn"), ("+2250707000000", "mtn"), ("12", "mtn"),
                                                ("0121000000", "mtn")])  # the last is a fixed line
def test_a_number_not_of_the_networks_country_is_refused_before_sending(feexpay, sandbox, receiver, phone, network):
    with pytest.raises(ProviderRejected) as caught:
        feexpay.create_checkout(_push_order(receiver, phone=phone, network=network))
    assert caught.value.code == "phone"
    assert sandbox.transactions("feexpay") == []


def test_push_request_fields(feexpay, sandbox, receiver):
    order = _push_order(receiver, description="Forfait 1 journée (Wi-Fi)")
    session = feexpay.create_checkout(order)
    assert session.redirect_url is None  # a push: the buyer approves on the phone
    (payment,) = sandbox.transactions("feexpay")
    assert payment["phoneNumber"] == "2290197000000" and payment["callback_info"] == order.code
    # Only letters, digits and spaces (MTN's rule), accents folded rather than dropped.
    assert payment["description"] == "Forfait 1 journee Wi Fi"
    assert (payment["first_name"], payment["last_name"]) == ("Koffi", "Mensah")
    assert payment["return_url"] is None  # a network that only pushes is sent nothing of pages


@pytest.mark.parametrize("network", ["wave_ci", "orange_ci"])
def test_a_payment_page_network_sends_the_buyer_there_and_back(feexpay, sandbox, receiver, network):
    order = _push_order(receiver, phone="0707000000", network=network)
    session = feexpay.create_checkout(order)
    (payment,) = sandbox.transactions("feexpay")
    assert payment["return_url"] == payment["cancel_url"] == order.return_url
    # The page names the payment by order_id alone.
    assert session.provider_ref == payment["order_id"] and session.redirect_url == sandbox.base_url + (
        f"/feexpay/pay/{payment['order_id']}")
    back = choose(session.redirect_url, "approve")
    assert back.status_code == 302 and back.headers["Location"] == order.return_url
    check = feexpay.fetch_status(session.provider_ref, order.code, network)
    assert check.status is PaymentStatus.PAID and check.payer_reference


@pytest.mark.parametrize("network", ["moov_ci", "free_sn", "moov_bf"])
def test_where_sources_disagree_the_answer_decides(feexpay, sandbox, receiver, network):
    phones = {"moov_ci": "0101000000", "free_sn": "761234567", "moov_bf": "70123456"}
    pushed = feexpay.create_checkout(_push_order(receiver, phone=phones[network], network=network))
    assert pushed.redirect_url is None
    sandbox.set_knobs(feexpay_flow="redirect")
    order = _push_order(receiver, phone=phones[network], network=network)
    paged = feexpay.create_checkout(order)
    assert paged.redirect_url and choose(paged.redirect_url, "cancel").headers["Location"] == order.return_url
    assert feexpay.fetch_status(paged.provider_ref, order.code, network).status is PaymentStatus.FAILED


@pytest.mark.parametrize(("network", "phone"), [("orange_sn", "771234567"), ("orange_bf", "76123456")])
def test_an_otp_network_wants_the_code_first(feexpay, sandbox, receiver, network, phone):
    with pytest.raises(ProviderRejected) as caught:
        feexpay.create_checkout(_push_order(receiver, phone=phone, network=network))
    assert caught.value.code == "otp"
    assert sandbox.transactions("feexpay") == []  # asked of the buyer, never sent without
    order = _push_order(receiver, phone=phone, network=network, otp="123456")
    session = feexpay.create_checkout(order)
    assert session.redirect_url is None
    choose(sandbox.phone_url(session.provider_ref), "approve")
    assert feexpay.fetch_status(session.provider_ref, order.code, network).status is PaymentStatus.PAID


def test_a_code_then_a_payment_page(feexpay, sandbox, receiver):
    sandbox.set_knobs(feexpay_flow="otp_redirect")
    session = feexpay.create_checkout(_push_order(receiver, phone="771234567", network="orange_sn", otp="4321"))
    assert session.redirect_url and session.redirect_url.startswith(sandbox.base_url)


def test_a_code_feexpay_asks_for_or_refuses_names_the_code(feexpay, sandbox, receiver):
    """Orange CI may want a code although the table says it does not: FeexPay's refusal says so."""
    sandbox.set_knobs(feexpay_flow="otp")
    assert not NETWORKS["orange_ci"].otp
    with pytest.raises(ProviderRejected) as asked:
        feexpay.create_checkout(_push_order(receiver, phone="0707000000", network="orange_ci"))
    assert asked.value.code == "otp" and "OTP" in asked.value.provider_message
    sandbox.set_knobs(feexpay_refuse_otp=True)
    with pytest.raises(ProviderRejected) as refused:
        feexpay.create_checkout(_push_order(receiver, phone="0707000000", network="orange_ci", otp="1234"))
    assert refused.value.code == "otp"
    assert sandbox.transactions("feexpay") == []


@pytest.mark.parametrize(
    ("message", "code"),
    [("Invalid phone number", "phone"), ("Numéro invalide", "phone"), ("Network Unavailable", "network"),
     ("OTP expired", "otp"), ("Shop not found", "400")],
)
def test_refusals_say_which_input_they_are_about(receiver, message, code):
    receiver.status, receiver.body = 400, json.dumps({"message": message})
    adapter = get_provider("feexpay", FEEXPAY, base_url=receiver.url(""), timeout=5)
    with pytest.raises(ProviderRejected) as caught:
        adapter.create_checkout(_push_order(receiver))
    assert (caught.value.code, caught.value.provider_message) == (code, message)


def test_congo_is_paid_in_xaf_though_feexpay_never_says_so(feexpay, sandbox, receiver):
    order = _push_order(receiver, phone="061234567", network="mtn_cg", currency="XAF")
    session = feexpay.create_checkout(order)
    sandbox.approve("feexpay", session.provider_ref)
    check = feexpay.fetch_status(session.provider_ref, order.code, "mtn_cg")
    assert (check.status, check.amount, check.currency) == (PaymentStatus.PAID, 500, "XAF")
    assert feexpay.fetch_status(session.provider_ref, order.code, "mtn").currency == "XOF"
    assert feexpay.fetch_status(session.provider_ref, order.code).currency is None  # unknown, not assumed


def test_a_payment_of_another_order_is_refused(feexpay, sandbox, receiver):
    order = _push_order(receiver)
    session = feexpay.create_checkout(order)
    with pytest.raises(ProviderRejected) as caught:
        feexpay.fetch_status(session.provider_ref, "SOMEONEELSE", "mtn")
    assert caught.value.code == "order"


def test_a_refused_token_on_the_status_call_is_the_keys_fault(feexpay, sandbox, receiver):
    order = _push_order(receiver)
    session = feexpay.create_checkout(order)
    sandbox.set_knobs(feexpay_status_unauthorized=True)
    with pytest.raises(KeysRefused) as caught:
        feexpay.fetch_status(session.provider_ref, order.code, "mtn")
    assert caught.value.code == "401"


@pytest.mark.parametrize(
    ("answer", "status", "payer_reference"),
    [
        ({"status": "ACCEPTED"}, PaymentStatus.PENDING, None),  # FeexPay's widget: not yet paid
        ({"status": "INPROGRESS"}, PaymentStatus.PENDING, None),
        ({"status": "IN PENDING STATE"}, PaymentStatus.PENDING, None),
        ({"status": "SUCCESSFUL", "operator_id": "OP-1"}, PaymentStatus.PAID, "OP-1"),
        ({"status": "SUCCESSFUL", "ref_operator": "OP-2"}, PaymentStatus.PAID, "OP-2"),
        ({"status": "FAILED", "reason": "PAYER_NOT_FOUND"}, PaymentStatus.FAILED, None),
    ],
)
def test_status_answers(receiver, answer, status, payer_reference):
    receiver.body = json.dumps({"reference": "r-1", "amount": 500, "callback_info": "ABC", **answer})
    check = get_provider("feexpay", FEEXPAY, base_url=receiver.url(""), timeout=5).fetch_status("r-1", "ABC", "mtn")
    assert (check.status, check.payer_reference) == (status, payer_reference)


def test_immediate_outcome_and_wrapped_status(feexpay, sandbox, receiver):
    sandbox.set_knobs(feexpay_push_outcome="SUCCESSFUL", feexpay_status_in_data=True)
    order = _push_order(receiver)
    session = feexpay.create_checkout(order)
    check = feexpay.fetch_status(session.provider_ref, order.code, "mtn")
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
