"""The contract every payment adapter keeps, checked once for each provider of the registry.

The facts an adapter declares (see portal/payments/base.py) are checked against what the app
does with them: the settings it reads, the database columns it fills, the walled garden, the
networks buyers pick, the texts it translates. The behaviours are played against the provider
sandbox over real HTTP: a payment paid, declined or cancelled from checkout to its notification
and status check, refused keys, an outage, a silent server, duplicate, lost, forged and altered
notifications, secrets kept out of errors and logs, arbitrary requests on the webhook.

What differs between providers is in one `Driver` per provider, below; a provider added to
`portal.payments.PROVIDERS` fails here until it has one. What only one provider does is tested
in its own module, tests/test_payments_<name>.py.
"""

import inspect
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from babel.messages.pofile import read_po
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.blueprints.owner.accounts import ENVIRONMENT_LABELS
from portal.models import Order, PaymentAccount, WebhookEvent
from portal.payments import PROVIDERS, api_url_defaults, find_network, get_provider, phones
from portal.payments.base import (
    CheckoutSession,
    CredentialField,
    InvalidNotification,
    KeysRefused,
    Network,
    OrderData,
    PaymentError,
    PaymentEvent,
    PaymentProvider,
    PaymentStatus,
    ProviderRejected,
    ProviderUnavailable,
)
from sandbox.providers import OUTCOMES, ProviderSandbox
from tests.conftest import (
    CINETPAY,
    FEDAPAY,
    FEDAPAY_PUBLIC_KEY,
    FEEXPAY,
    Receiver,
    choose,
    free_port,
    make_order,
    parse_form,
)
from tests.support import deliver

CATALOGUE = Path(__file__).resolve().parent.parent / "portal" / "translations" / "en" / "LC_MESSAGES" / "messages.po"
PAID, FAILED, CANCELLED = PaymentStatus.PAID, PaymentStatus.FAILED, PaymentStatus.CANCELLED


# -- one driver per provider ---------------------------------------------------------------------


@dataclass(frozen=True)
class Driver:
    """How the tests play one provider: its sandbox account, an order it takes, what its sandbox says.

    The account is the one the `sandbox` fixture (tests/conftest.py) registers, with its webhook
    URL under /webhooks/<name>/ on the receiver.
    """

    credentials: Mapping[str, str]  # an account the `sandbox` fixture registers, every field filled
    secret: frozenset[str]  # which of those are secrets: never shown back, logged or put in an error
    wrong_credentials: Mapping[str, str]  # secret fields changed to keys the sandbox refuses
    refusal: tuple[str, str]  # the error code and the provider's message those keys get
    order: Mapping[str, object]  # what an order needs besides make_order's defaults
    payer_phone: str  # the payer's phone fetch_status reports once that order is paid
    receipt_field: str  # the field of the sandbox's record that the payer's receipt shows
    outcomes: Mapping[str, PaymentStatus]  # the buyer's choice on the provider's page -> fetch_status
    says_status: bool  # notifications carry the payment's status; otherwise only "check this one"
    record_ref: str  # the field of the sandbox's record that is the payment's reference
    # The page where the buyer settles the payment: the hosted checkout, or the phone's prompt.
    buyer_page: Callable[[ProviderSandbox, CheckoutSession], str] = lambda sandbox, session: session.redirect_url


DRIVERS: dict[str, Driver] = {
    "fedapay": Driver(
        credentials={**FEDAPAY, "public_key": FEDAPAY_PUBLIC_KEY},
        secret=frozenset({"secret_key", "webhook_secret"}),
        wrong_credentials={"secret_key": "sk_sandbox_NotRegistered42"},
        refusal=("401", "Unauthenticated."),
        order={"phone": "+229 01 97 00 00 00", "customer_name": "Awa Koné"},
        payer_phone="+2290197000000",
        receipt_field="reference",
        outcomes={"approve": PAID, "decline": FAILED, "cancel": CANCELLED},
        says_status=True,
        record_ref="id",
    ),
    "cinetpay": Driver(
        credentials=CINETPAY,
        secret=frozenset({"apikey", "secret_key"}),
        wrong_credentials={"apikey": "cp-apikey-WRONG-5521"},
        refusal=("609", "AUTH_NOT_FOUND: The apikey is not valid"),
        order={"phone": "0707000000"},
        payer_phone="2250707000000",
        receipt_field="operator_id",
        outcomes={"approve": PAID, "decline": FAILED, "cancel": CANCELLED},
        says_status=False,
        record_ref="transaction_id",
    ),
    "feexpay": Driver(
        credentials=FEEXPAY,
        secret=frozenset({"token"}),
        wrong_credentials={"token": "fp_WRONG_token_7781"},
        refusal=("401", "Unauthorized"),
        order={"phone": "01 97 00 00 00", "network": "mtn", "customer_name": "Koffi Mensah"},
        payer_phone="2290197000000",
        receipt_field="ref_operator",
        outcomes={"approve": PAID, "decline": FAILED, "cancel": FAILED},  # a refused push is a failure
        says_status=True,
        record_ref="reference",
        buyer_page=lambda sandbox, session: sandbox.phone_url(session.provider_ref),
    ),
}

each_provider = pytest.mark.parametrize("name", list(PROVIDERS))


def driver_for(name: str) -> Driver:
    assert name in DRIVERS, (f"{name} is in PROVIDERS without a Driver in tests/test_payments_contract.py "
                             "(and an account in the `sandbox` fixture)")
    return DRIVERS[name]


def bound(name: str, base_url: str, *, credentials: Mapping[str, str] | None = None,
          timeout: float = 5.0) -> PaymentProvider:
    return get_provider(name, credentials or driver_for(name).credentials, base_url=base_url, timeout=timeout)


def an_order(name: str, receiver: Receiver, **changes: object) -> OrderData:
    """An order the provider takes, its webhook URL on the receiver under /webhooks/<name>/."""
    values = {"notify_url": receiver.url(f"/webhooks/{name}/tok"), **driver_for(name).order, **changes}
    return make_order(receiver, **values)


def hooks(name: str) -> str:
    """Where the `sandbox` fixture's accounts (and `an_order`) have the provider send notifications."""
    return f"/webhooks/{name}"


def returns_to(answer: requests.Response) -> str:
    """Where a hosted page sends the buyer's browser next: a redirect, or a form it submits."""
    return answer.headers["Location"] if answer.is_redirect else parse_form(answer.text).action


def secret_values(name: str) -> list[str]:
    """Every secret of the driver's account and of its refused keys."""
    driver = driver_for(name)
    accounts = (driver.credentials, driver.wrong_credentials)
    return [value for account in accounts for key, value in account.items() if key in driver.secret]


def described(errors: list[PaymentError]) -> str:
    return " ".join(f"{e} {e!r} {e.provider_message}" for e in errors)


def within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """What `call` raised, failing when it has not ended after `seconds` (it goes on in the background)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting after {seconds} s"
    return outcome[0]


# -- the registry and its drivers ----------------------------------------------------------------


def test_the_registry_lists_providers_by_name():
    assert PROVIDERS, "no payment provider"
    assert list(PROVIDERS) == [cls.name for cls in PROVIDERS.values()]
    with pytest.raises(KeyError):
        get_provider("paypal", {}, base_url="http://unused")


def test_every_driver_plays_a_registered_provider():
    assert set(DRIVERS) <= set(PROVIDERS), f"drivers for unknown providers: {set(DRIVERS) - set(PROVIDERS)}"


@each_provider
def test_the_driver_fits_its_provider(name):
    cls, driver = PROVIDERS[name], driver_for(name)
    fields = {f.name: f for f in cls.credential_fields}
    assert set(driver.credentials) == set(fields) and all(driver.credentials.values())
    assert {f.name for f in cls.credential_fields if f.secret} == driver.secret
    assert driver.wrong_credentials and set(driver.wrong_credentials) <= driver.secret
    assert all(driver.credentials[k] != v for k, v in driver.wrong_credentials.items())
    assert set(driver.outcomes) == set(OUTCOMES) and driver.outcomes["approve"] is PAID
    if cls.needs_phone:
        assert driver.order.get("phone") and driver.order.get("network") in cls.networks


@each_provider
def test_get_provider_binds_the_adapter(name):
    cls, credentials = PROVIDERS[name], driver_for(name).credentials
    assert issubclass(cls, PaymentProvider) and not inspect.isabstract(cls)
    adapter = get_provider(name, credentials, base_url="http://api.example/", timeout=3)
    assert type(adapter) is cls
    assert (adapter.base_url, adapter.timeout, adapter.credentials) == ("http://api.example", 3, credentials)


# -- the facts each adapter declares -------------------------------------------------------------

# Every fact PaymentProvider declares, and what a valid value looks like.
FACTS: dict[str, Callable[[object], bool]] = {
    "name": lambda v: isinstance(v, str) and re.fullmatch(r"[a-z][a-z0-9]*", v) is not None,
    "title": lambda v: isinstance(v, str) and v.strip() == v and bool(v),
    "api_urls": lambda v: isinstance(v, Mapping) and bool(v),
    "credential_fields": lambda v: isinstance(v, tuple) and bool(v) and all(isinstance(f, CredentialField) for f in v),
    "public_id_field": lambda v: isinstance(v, str) and bool(v),
    "checkout_hosts": lambda v: isinstance(v, Mapping) and bool(v) and all(isinstance(h, tuple) for h in v.values()),
    "needs_phone": lambda v: isinstance(v, bool),
    "unanswered_checkout_may_charge": lambda v: isinstance(v, bool),
    "networks": lambda v: isinstance(v, Mapping) and all(isinstance(n, Network) for n in v.values()),
    "wallets": lambda v: isinstance(v, Mapping) and bool(v) and all(
        phones.known_country(country) and isinstance(names, tuple) and names and all(isinstance(w, str) and w for w in names)
        for country, names in v.items()),
    "currencies": lambda v: isinstance(v, tuple) and bool(v) and all(re.fullmatch(r"[A-Z]{3}", c) for c in v),
    "notification_headers": lambda v: isinstance(v, tuple) and all(isinstance(h, str) and h for h in v),
    "guide_buy_path": lambda v: v is None or (isinstance(v, str) and v.startswith("/")),
    "guide_public_id_param": lambda v: isinstance(v, str),
    "webhook_setup": lambda v: isinstance(v, str) and bool(v.strip()),
    "environment_hint": lambda v: isinstance(v, str),
    "refusals": lambda v: isinstance(v, Mapping) and all(isinstance(c, str) and c and isinstance(r, str) and r.strip()
                                                         for c, r in v.items()),
}


def test_the_contract_checks_every_declared_fact():
    assert set(FACTS) == set(PaymentProvider.__annotations__)


@each_provider
@pytest.mark.parametrize("fact", list(FACTS))
def test_declares_the_facts_the_app_reads(name, fact):
    cls = PROVIDERS[name]
    assert hasattr(cls, fact), f"{cls.__name__} does not declare {fact}"
    assert FACTS[fact](getattr(cls, fact)), f"{cls.__name__}.{fact} = {getattr(cls, fact)!r}"


@each_provider
def test_the_name_fits_the_database(name):
    for column in (PaymentAccount.provider, Order.provider, WebhookEvent.provider):
        assert len(name) <= column.type.length


def test_names_and_titles_are_distinct():
    titles = [cls.title for cls in PROVIDERS.values()]
    assert len(set(titles)) == len(titles)


@each_provider
def test_credential_fields(name):
    cls = PROVIDERS[name]
    names = [f.name for f in cls.credential_fields]
    assert len(set(names)) == len(names) and all(n.isidentifier() for n in names)
    assert all(f.label.strip() for f in cls.credential_fields)
    assert any(f.secret and f.required for f in cls.credential_fields), "nothing authenticates the account"
    public = {f.name: f for f in cls.credential_fields}.get(cls.public_id_field)
    assert public is not None and not public.secret, "public_id_field must name a non-secret credential"


@each_provider
def test_missing_credentials_are_refused_by_label(name):
    cls, credentials = PROVIDERS[name], driver_for(name).credentials
    required = [f for f in cls.credential_fields if f.required]
    for f in required:
        with pytest.raises(ProviderRejected) as caught:
            cls({**credentials, f.name: ""}, base_url="http://unused")
        assert caught.value.code == "credentials" and caught.value.provider == name and f.label in str(caught.value)
    # Optional fields may be left out: the adapter holds them as "".
    adapter = cls({f.name: credentials[f.name] for f in required}, base_url="http://unused")
    assert set(adapter.credentials) == {f.name for f in cls.credential_fields}


@each_provider
def test_api_urls_environments_and_settings(name):
    cls = PROVIDERS[name]
    for environment, url in cls.api_urls.items():
        assert re.fullmatch(r"[a-z]+", environment) and len(environment) <= PaymentAccount.environment.type.length
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.hostname and not url.endswith("/")
        setting = cls.api_url_setting(environment)
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*_API_URL", setting) and api_url_defaults()[setting] == url
    if len(cls.api_urls) > 1:  # the owner picks the environment: each has a label and the form a hint
        assert all(environment in ENVIRONMENT_LABELS for environment in cls.api_urls)
        assert cls.environment_hint.strip()
    else:  # no environment field, so a hint would never show
        assert cls.environment_hint == ""


def test_api_url_settings_are_distinct():
    settings_ = [cls.api_url_setting(env) for cls in PROVIDERS.values() for env in cls.api_urls]
    assert len(set(settings_)) == len(settings_) == len(api_url_defaults())


@each_provider
def test_checkout_hosts(name):
    cls = PROVIDERS[name]
    assert set(cls.checkout_hosts) <= set(cls.api_urls), "checkout_hosts keys are environments of api_urls"
    for hosts in cls.checkout_hosts.values():
        assert all(re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", host) for host in hosts), hosts
        assert len(set(hosts)) == len(hosts)
    if not cls.needs_phone:  # the buyer's browser goes to a hosted page: the walled garden must let it
        assert all(cls.checkout_hosts.get(env) for env in cls.api_urls)


@each_provider
def test_networks_and_wallets(name):
    cls = PROVIDERS[name]
    assert cls.needs_phone == bool(cls.networks), "a push provider charges a network the buyer picks"
    assert not cls.unanswered_checkout_may_charge or cls.needs_phone, "only a push rings without our answer"
    assert all(len(set(names)) == len(names) for names in cls.wallets.values())
    for code, network in cls.networks.items():
        assert code == network.code and re.fullmatch(r"[a-z0-9_]+", code)
        assert network.country == network.country.lower() and phones.known_country(network.country)
        assert phones.example(network.country), "the buy form shows an example number of the country"
        assert network.currency in cls.currencies, network.currency
        assert network.wallet in cls.wallets[network.country], "buyers are offered the wallets of their country"
        assert find_network(code) is network
        assert not network.otp or network.otp_hint, "a network asking for a code says how to get it"
        assert not network.checkout_hosts or network.may_redirect, "only a payment page needs hosts"
        assert all(re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", host) for host in network.checkout_hosts)


def test_network_codes_are_unique_across_providers():
    codes = [code for cls in PROVIDERS.values() for code in cls.networks]
    assert len(set(codes)) == len(codes)


@each_provider
def test_notification_headers_and_guide_links(name):
    cls = PROVIDERS[name]
    # The app keeps a header when its lower-cased name is listed.
    assert all(h == h.lower() for h in cls.notification_headers)
    if cls.guide_buy_path:
        assert cls.guide_public_id_param, "the guide's links carry the account's public id"


def test_guide_paths_are_distinct():
    paths = [cls.guide_buy_path for cls in PROVIDERS.values() if cls.guide_buy_path]
    assert len(set(paths)) == len(paths)


@pytest.fixture(scope="module")
def catalogue():
    with CATALOGUE.open("rb") as f:
        return read_po(f, locale="en")


@each_provider
def test_texts_for_owners_and_buyers_are_translated(name, catalogue):
    cls = PROVIDERS[name]
    texts = [f.label for f in cls.credential_fields] + [cls.webhook_setup] + [cls.environment_hint] * bool(
        cls.environment_hint) + [n.otp_hint for n in cls.networks.values() if n.otp_hint]
    for text in texts:
        message = catalogue.get(text)
        assert message is not None, f"{text!r} is not in {CATALOGUE.name}: run `make translations`"
        assert message.string.strip() and not message.fuzzy, f"{text!r} has no English translation"


# -- behaviours, against the sandbox -------------------------------------------------------------


@each_provider
def test_good_keys_pass_the_credential_check(name, sandbox):
    assert bound(name, sandbox.api_url(name)).check_credentials() is None


@each_provider
def test_refused_keys_carry_the_provider_message(name, sandbox, receiver):
    driver = driver_for(name)
    wrong = bound(name, sandbox.api_url(name), credentials={**driver.credentials, **driver.wrong_credentials})
    with pytest.raises(KeysRefused) as caught:  # not the payment's fault: a notification must come back later
        wrong.check_credentials()
    assert (caught.value.code, caught.value.provider_message) == driver.refusal
    assert caught.value.provider == name
    with pytest.raises(KeysRefused):
        wrong.create_checkout(an_order(name, receiver))
    with pytest.raises(KeysRefused):
        wrong.fetch_status("ABC123", "ABC123")
    assert sandbox.transactions(name) == []


@each_provider
def test_paid_flow(name, sandbox, receiver):
    cls, driver = PROVIDERS[name], driver_for(name)
    adapter = bound(name, sandbox.api_url(name))
    order = an_order(name, receiver)
    session = adapter.create_checkout(order)
    assert session.provider_ref and len(session.provider_ref) <= Order.provider_ref.type.length
    if cls.needs_phone:  # the buyer confirms on the phone
        assert session.redirect_url is None
    else:
        assert session.redirect_url.startswith(sandbox.base_url)
    pending = adapter.fetch_status(session.provider_ref, order.code)
    assert (pending.provider_ref, pending.status) == (session.provider_ref, PaymentStatus.PENDING)

    answer = choose(driver.buyer_page(sandbox, session), "approve")
    if session.redirect_url:
        assert returns_to(answer).startswith(order.return_url)

    (hook,) = receiver.wait_for(hooks(name))
    event = deliver(adapter, hook)
    assert event == adapter.parse_notification(hook.body, hook.headers)  # with or without the parsed form
    assert (event.provider_ref, event.order_code) == (session.provider_ref, order.code)
    assert event.status_hint is (PAID if driver.says_status else None)

    check = adapter.fetch_status(session.provider_ref, order.code, order.network)
    assert (check.provider_ref, check.status, check.amount, check.currency) == (session.provider_ref, PAID, 500, "XOF")
    (record,) = sandbox.transactions(name)
    assert check.payer_reference and check.payer_reference == record[driver.receipt_field]
    assert check.payer_phone == driver.payer_phone


@each_provider
@pytest.mark.parametrize("outcome", ["decline", "cancel"])
def test_declined_and_cancelled(name, outcome, sandbox, receiver):
    driver = driver_for(name)
    expected = driver.outcomes[outcome]
    assert expected is not PAID
    adapter = bound(name, sandbox.api_url(name))
    order = an_order(name, receiver)
    session = adapter.create_checkout(order)
    choose(driver.buyer_page(sandbox, session), outcome)
    (hook,) = receiver.wait_for(hooks(name))
    event = deliver(adapter, hook)
    assert (event.provider_ref, event.order_code) == (session.provider_ref, order.code)
    assert event.status_hint is (expected if driver.says_status else None)
    check = adapter.fetch_status(session.provider_ref, order.code)
    # The sandboxes decline for the wallet's balance, each in its provider's words; a cancel is not that.
    assert check.status is expected and check.insufficient_funds is (outcome == "decline")


@each_provider
def test_an_unknown_payment_is_an_error_not_a_state(name, sandbox):
    with pytest.raises(ProviderRejected) as caught:
        bound(name, sandbox.api_url(name)).fetch_status("NEVERSEEN42", "NEVERSEEN42")
    assert caught.value.provider_message


@each_provider
def test_phone_and_network_only_where_needed(name, sandbox, receiver):
    cls = PROVIDERS[name]
    adapter = bound(name, sandbox.api_url(name))
    if cls.needs_phone:  # refused before anything reaches the provider
        with pytest.raises(ProviderRejected) as no_phone:
            adapter.create_checkout(an_order(name, receiver, phone=None))
        assert no_phone.value.code == "phone"
        with pytest.raises(ProviderRejected) as unknown_network:
            adapter.create_checkout(an_order(name, receiver, network=f"not-{name}"))
        assert unknown_network.value.code == "network"
        assert sandbox.transactions(name) == []
    else:
        session = adapter.create_checkout(an_order(name, receiver, phone=None, network=None))
        assert session.redirect_url and len(sandbox.transactions(name)) == 1


def _calls(adapter: PaymentProvider, name: str, receiver: Receiver, ref: str = "ABC123", code: str = "ABC123"):
    return {
        "create_checkout": lambda: adapter.create_checkout(an_order(name, receiver)),
        "fetch_status": lambda: adapter.fetch_status(ref, code),
        "check_credentials": adapter.check_credentials,
    }


@each_provider
def test_outage_and_dropped_connection(name, sandbox, receiver):
    adapter = bound(name, sandbox.api_url(name))
    order = an_order(name, receiver)
    session = adapter.create_checkout(order)
    calls = _calls(adapter, name, receiver, session.provider_ref, order.code)
    sandbox.outage = True
    for call_name, call in calls.items():
        with pytest.raises(ProviderUnavailable) as caught:
            call()
        assert caught.value.code == "503" and caught.value.sent, call_name
    sandbox.outage_drops_connection = True
    for call_name, call in calls.items():
        with pytest.raises(ProviderUnavailable, match="ConnectionError") as caught:
            call()
        assert caught.value.code == "network", call_name
        assert caught.value.sent, f"{call_name}: the request arrived before the connection closed"


@each_provider
def test_timeout_is_fast(name, silent_server, receiver):
    timeout = 0.5
    adapter = bound(name, silent_server, timeout=timeout)
    for call_name, call in _calls(adapter, name, receiver).items():
        error = within(10 * timeout, call)
        assert isinstance(error, ProviderUnavailable), (call_name, error)
        assert error.code == "network" and "Timeout" in str(error), call_name
        assert error.sent, f"{call_name}: a silent server may have acted on the request"


@each_provider
def test_a_refused_connection_sent_nothing(name, receiver):
    adapter = bound(name, f"http://127.0.0.1:{free_port()}")
    for call_name, call in _calls(adapter, name, receiver).items():
        with pytest.raises(ProviderUnavailable) as caught:
            call()
        assert caught.value.code == "network" and not caught.value.sent, call_name


@each_provider
def test_a_lost_answer_leaves_a_payment_its_notification_names(name, sandbox, receiver):
    """The request made the payment but its answer was lost: only its notification leads back to the order."""
    driver = driver_for(name)
    sandbox.outage_after_create = True
    adapter = bound(name, sandbox.api_url(name))
    order = an_order(name, receiver)
    with pytest.raises(ProviderUnavailable) as caught:
        adapter.create_checkout(order)
    assert caught.value.code == "502" and caught.value.sent
    (record,) = sandbox.transactions(name)
    ref = str(record[driver.record_ref])
    sandbox.approve(name, ref)
    (hook,) = receiver.wait_for(hooks(name))
    event = deliver(adapter, hook)
    assert (event.order_code, event.provider_ref) == (order.code, ref)
    assert adapter.fetch_status(ref, order.code, order.network).status is PAID


@each_provider
def test_duplicate_notifications_all_verify(name, sandbox, receiver):
    sandbox.duplicate_notifications = 3
    adapter = bound(name, sandbox.api_url(name))
    order = an_order(name, receiver)
    session = adapter.create_checkout(order)
    sandbox.approve(name, session.provider_ref)
    assert sandbox.drain()
    received = receiver.received(hooks(name))
    assert len(received) == 3
    events = {deliver(adapter, hook) for hook in received}
    assert len(events) == 1  # the same event three times, as the app must recognise it
    (event,) = events
    assert (event.provider_ref, event.order_code) == (session.provider_ref, order.code)


@each_provider
def test_lost_notifications_leave_the_status_check(name, sandbox, receiver):
    sandbox.lose_notifications = True
    adapter = bound(name, sandbox.api_url(name))
    order = an_order(name, receiver)
    session = adapter.create_checkout(order)
    sandbox.approve(name, session.provider_ref)
    assert sandbox.drain() and receiver.received(hooks(name)) == []
    assert adapter.fetch_status(session.provider_ref, order.code).status is PAID


@each_provider
def test_forged_notifications_never_make_a_payment_paid(name, sandbox, receiver):
    driver = driver_for(name)
    sandbox.forge_signatures = True
    adapter = bound(name, sandbox.api_url(name))
    order = an_order(name, receiver)
    session = adapter.create_checkout(order)
    sandbox.decline(name, session.provider_ref)
    (hook,) = receiver.wait_for(hooks(name))
    if adapter.notification_is_signed():  # signed with the wrong key
        with pytest.raises(InvalidNotification) as caught:
            deliver(adapter, hook)
        assert caught.value.code == "signature"
    else:  # unsigned, so the forger simply claims success: only the status check tells
        assert deliver(adapter, hook).status_hint is PAID
    assert adapter.fetch_status(session.provider_ref, order.code).status is driver.outcomes["decline"]


@each_provider
def test_notifications_altered_in_transit(name, sandbox, receiver):
    cls = PROVIDERS[name]
    adapter = bound(name, sandbox.api_url(name))
    order = an_order(name, receiver)
    session = adapter.create_checkout(order)
    sandbox.approve(name, session.provider_ref)
    (hook,) = receiver.wait_for(hooks(name))
    # The headers the app keeps with a notification are those the provider sends.
    assert set(cls.notification_headers) <= {k.lower() for k in hook.headers}
    assert deliver(adapter, hook).order_code == order.code

    other = secrets.token_hex(5).upper()
    tampered = hook.body.replace(order.code.encode(), other.encode())
    assert tampered != hook.body
    unsigned = {k: v for k, v in hook.headers.items() if k.lower() not in cls.notification_headers}
    if adapter.notification_is_signed():
        assert cls.notification_headers, "the app must keep the signature with the notification"
        for changes in ({"body": tampered}, {"headers": unsigned}):
            with pytest.raises(InvalidNotification) as caught:
                deliver(adapter, hook, **changes)
            assert caught.value.code == "signature", changes
    else:  # anyone can write one: the app treats it as a hint (notification_is_signed() is False)
        assert deliver(adapter, hook, body=tampered, headers=unsigned).order_code == other


@each_provider
def test_secrets_stay_out_of_errors_and_logs(name, sandbox, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    driver = driver_for(name)
    adapter = bound(name, sandbox.api_url(name))
    wrong = bound(name, sandbox.api_url(name), credentials={**driver.credentials, **driver.wrong_credentials})
    calls = [wrong.check_credentials, lambda: wrong.create_checkout(an_order(name, receiver)),
             lambda: adapter.parse_notification(b"{}", {})]
    errors = []
    for call in calls:
        with pytest.raises(PaymentError) as caught:
            call()
        errors.append(caught.value)
    sandbox.outage = True
    for call in _calls(adapter, name, receiver).values():
        with pytest.raises(ProviderUnavailable) as caught:
            call()
        errors.append(caught.value)
    assert isinstance(errors[2], InvalidNotification)
    text = described(errors) + repr(adapter) + repr(wrong) + caplog.text
    assert caplog.records
    for secret in secret_values(name):
        assert secret not in text


@each_provider
def test_secrets_echoed_by_the_provider_are_scrubbed(name, receiver, caplog):
    """A provider quoting the keys back in its error body: the message is kept, the keys are not."""
    caplog.set_level(logging.DEBUG)
    driver = driver_for(name)
    echoed = " ".join(driver.credentials[k] for k in sorted(driver.secret))
    receiver.status = 500
    receiver.body = json.dumps({"message": f"bad keys {echoed}", "description": f"bad keys {echoed}",
                                "error": f"bad keys {echoed}", "errors": {"key": [echoed]}})
    adapter = bound(name, receiver.url(""))
    errors = []
    for call_name, call in _calls(adapter, name, receiver).items():
        with pytest.raises(ProviderUnavailable) as caught:
            call()
        assert "bad keys ***" in caught.value.provider_message, call_name
        errors.append(caught.value)
    assert len(receiver.requests) == 3
    text = described(errors) + caplog.text
    for secret in secret_values(name):
        assert secret not in text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
form_fields = st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=5)
bodies = (st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
          | form_fields.map(lambda f: urlencode(f).encode()))
header_maps = st.dictionaries(st.text(max_size=30), st.text(max_size=80), max_size=4)


@each_provider
@settings(max_examples=120, deadline=None)
@given(body=bodies, headers=header_maps, form=st.none() | form_fields)
def test_arbitrary_requests_are_refused_or_read(name, body, headers, form):
    adapter = PROVIDERS[name](driver_for(name).credentials, base_url="http://unused")
    try:
        event = adapter.parse_notification(body, headers, form)
    except InvalidNotification as exc:
        assert exc.provider == name
        return
    # Only an unsigned provider reads a request nobody signed.
    assert not adapter.notification_is_signed()
    assert isinstance(event, PaymentEvent)
    assert all(v is None or (isinstance(v, str) and v) for v in (event.provider_ref, event.order_code, event.event_id))
    assert event.status_hint is None or isinstance(event.status_hint, PaymentStatus)
