"""Payment account pages against the provider sandbox over real HTTP; secrets stay secret."""

import json
import re

import pytest
from flask import render_template
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from portal.extensions import db
from portal.models import Order, PaymentAccount, Router
from portal.services import owners
from tests.conftest import CINETPAY, FEDAPAY, FEDAPAY_PUBLIC_KEY, FEEXPAY, Browser, page_text
from tests.support import expected_statuses

PUBLIC_URL = "https://kiosque.example"

# A valid form per provider, with the secrets it carries and the public id it should store.
FORMS = {
    "fedapay": ({"label": "FedaPay test", "environment": "sandbox", "active": "y",
                 "public_key": FEDAPAY_PUBLIC_KEY, **FEDAPAY}, FEDAPAY_PUBLIC_KEY),
    "cinetpay": ({"label": "CinetPay", "active": "y", **CINETPAY}, CINETPAY["site_id"]),
    "feexpay": ({"label": "FeexPay", "active": "y", "networks": ["mtn", "moov"], **FEEXPAY}, FEEXPAY["shop_id"]),
}
# A change of each provider's own settings.
EDITS = {"fedapay": {"environment": "live"}, "cinetpay": {"site_id": "445161"}, "feexpay": {"networks": ["wave_sn"]}}
SECRETS = {
    "fedapay": FEDAPAY,
    "cinetpay": {"apikey": CINETPAY["apikey"], "secret_key": CINETPAY["secret_key"]},
    "feexpay": {"token": FEEXPAY["token"]},
}


@pytest.fixture
def app_config(app_config, sandbox):
    return {
        **app_config,
        "PUBLIC_URL": PUBLIC_URL + "/",
        "FEDAPAY_API_URL": sandbox.api_url("fedapay", "live"),
        "FEDAPAY_SANDBOX_API_URL": sandbox.api_url("fedapay", "sandbox"),
        "CINETPAY_API_URL": sandbox.api_url("cinetpay"),
        "FEEXPAY_API_URL": sandbox.api_url("feexpay"),
        "PROVIDER_TIMEOUT": 3.0,
    }


def add_account(browser, provider: str, **overrides) -> PaymentAccount:
    response = browser.post(f"/owner/accounts/new/{provider}", {**FORMS[provider][0], **overrides})
    assert response.status_code == 302, page_text(response)
    return db.session.scalar(db.select(PaymentAccount).order_by(PaymentAccount.id.desc()))


def add_router(owner, name: str = "Maquis") -> Router:
    router = Router(owner=owner, name=name, host="192.0.2.1", api_username="admin", api_password="x")
    db.session.add(router)
    db.session.commit()
    return router


def fields_in_error(page: str) -> list[str]:
    blocks = re.findall(r'class="field has-error">(.*?)</(?:div|fieldset)>', page, re.DOTALL)
    return [re.search(r'name="(\w+)"', block).group(1) for block in blocks]


@pytest.fixture
def other_owner(app):
    return owners.create_owner("other@example.com", "other-password")


@pytest.fixture
def foreign_account(other_owner) -> PaymentAccount:
    account = PaymentAccount(owner_id=other_owner.id, provider="cinetpay", label="Autre compte",
                             credentials=json.dumps(CINETPAY), public_id=CINETPAY["site_id"])
    db.session.add(account)
    db.session.commit()
    return account


@pytest.mark.parametrize("provider", FORMS)
def test_create_edit_delete(browser, provider):
    values, public_id = FORMS[provider]
    account = add_account(browser, provider)
    assert (account.provider, account.label, account.active, account.public_id) == (
        provider, values["label"], True, public_id)
    credentials = {k: v for k, v in values.items() if k not in ("label", "environment", "active", "networks")}
    assert account.secrets == credentials
    assert account.environment == ("sandbox" if provider == "fedapay" else "live")
    assert account.settings == ({"networks": ["mtn", "moov"]} if provider == "feexpay" else {})

    edited = {**values, **EDITS[provider], "label": "Renommé"}
    assert browser.post(f"/owner/accounts/{account.id}/edit", edited).status_code == 302
    db.session.refresh(account)
    assert account.label == "Renommé"
    assert account.secrets == {name: edited[name] for name in credentials}
    assert (account.environment, account.public_id, account.settings) == {
        "fedapay": ("live", public_id, {}),
        "cinetpay": ("live", "445161", {}),
        "feexpay": ("live", public_id, {"networks": ["wave_sn"]}),
    }[provider]
    assert "Renommé" in page_text(browser.get("/owner/accounts/"))

    assert browser.post(f"/owner/accounts/{account.id}/delete").status_code == 303
    assert db.session.scalar(db.select(db.func.count(PaymentAccount.id))) == 0


def test_unchecked_active_box_deactivates(browser):
    account = add_account(browser, "cinetpay")
    form = {k: v for k, v in FORMS["cinetpay"][0].items() if k != "active"}
    assert browser.post(f"/owner/accounts/{account.id}/edit", form).status_code == 302
    db.session.refresh(account)
    assert account.active is False
    assert "inactif" in page_text(browser.get("/owner/accounts/"))


@pytest.mark.parametrize("provider", FORMS)
def test_secrets_are_encrypted_and_never_shown(browser, provider):
    account = add_account(browser, provider)
    raw = " ".join(map(str, db.session.execute(text("SELECT * FROM payment_account")).one()))
    pages = [page_text(browser.get(url)) for url in (
        "/owner/accounts/", f"/owner/accounts/{account.id}/edit", f"/owner/accounts/new/{provider}")]
    # A refused form does not echo what was typed into a secret field either.
    refused = browser.post(f"/owner/accounts/{account.id}/edit", {**FORMS[provider][0], "label": ""})
    assert refused.status_code == 422
    pages.append(page_text(refused))
    for secret in SECRETS[provider].values():
        assert secret not in raw
        assert not any(secret in page for page in pages), secret
    ciphertext = db.session.execute(text("SELECT credentials FROM payment_account")).scalar()
    assert not any(ciphertext in page for page in pages)
    assert "Laissez vide pour garder la valeur enregistrée" in pages[1]
    assert FORMS[provider][1] in pages[1]  # the public id is filled back


@pytest.mark.parametrize("provider", FORMS)
def test_blank_secrets_keep_the_stored_ones(browser, provider):
    account = add_account(browser, provider)
    blank = dict.fromkeys(SECRETS[provider], "")
    response = browser.post(f"/owner/accounts/{account.id}/edit", {**FORMS[provider][0], **blank, "label": "B"})
    assert response.status_code == 302, page_text(response)
    db.session.refresh(account)
    assert account.label == "B"
    assert {name: account.secrets[name] for name in SECRETS[provider]} == SECRETS[provider]


def test_a_new_secret_replaces_the_stored_one(browser):
    account = add_account(browser, "feexpay")
    browser.post(f"/owner/accounts/{account.id}/edit", {**FORMS["feexpay"][0], "token": "  fp_NewToken9  "})
    db.session.refresh(account)
    assert account.secrets["token"] == "fp_NewToken9"


@pytest.mark.parametrize("provider, overrides, field, message", [
    ("fedapay", {"secret_key": ""}, "secret_key", "Ce champ est obligatoire"),
    ("fedapay", {"environment": "prod"}, "environment", ""),
    ("cinetpay", {"site_id": ""}, "site_id", ""),
    ("cinetpay", {"apikey": "a key with spaces"}, "apikey", "ni espace ni accent"),
    ("feexpay", {"networks": []}, "networks", "au moins un réseau"),
    ("feexpay", {"networks": ["mtn", "airtel"]}, "networks", ""),
    ("feexpay", {"label": "   "}, "label", ""),
])
def test_bad_input_is_a_form_error(browser, provider, overrides, field, message):
    response = browser.post(f"/owner/accounts/new/{provider}", {**FORMS[provider][0], **overrides})
    page = page_text(response)
    assert response.status_code == 422
    assert fields_in_error(page) == [field]
    assert message in page
    assert db.session.scalar(db.select(db.func.count(PaymentAccount.id))) == 0


junk = st.text(max_size=40) | st.sampled_from(["", " ", "<b>x</b>", "\x00", "é", "mtn", "live", "x" * 300])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(provider=st.sampled_from(list(FORMS)), data=st.dictionaries(
    st.sampled_from(["label", "environment", "active", "networks", "secret_key", "webhook_secret", "public_key",
                     "apikey", "site_id", "shop_id", "token"]),
    junk | st.lists(junk, max_size=3)))
def test_account_form_never_fails(browser, provider, data):
    response = browser.post(f"/owner/accounts/new/{provider}", {**FORMS[provider][0], **data})
    assert response.status_code in expected_statuses(data), response.status_code


def test_unknown_provider_is_404(browser):
    assert browser.get("/owner/accounts/new/paypal").status_code == 404
    assert browser.post("/owner/accounts/new/paypal", FORMS["cinetpay"][0]).status_code == 404


@pytest.mark.parametrize("provider", FORMS)
def test_check_keys_accepted(browser, provider):
    account = add_account(browser, provider)
    response = browser.post(f"/owner/accounts/{account.id}/check", headers={"HX-Request": "true"})
    page = page_text(response)
    assert response.status_code == 200 and "<html" not in page
    assert "Clés acceptées par" in page


@pytest.mark.parametrize("provider, wrong, refusal", [
    ("fedapay", {"secret_key": "sk_sandbox_wrong"},
     "FedaPay refuse ces clés : la clé secrète n'est pas reconnue. Recopiez-la en entier, sans espace, et vérifiez "
     "l'environnement du compte : une clé sk_sandbox_… ne marche qu'en test, une clé sk_live_… qu'en production. "
     "(réponse de FedaPay : « Unauthenticated. »)"),
    ("cinetpay", {"apikey": "wrong"},
     "CinetPay refuse ces clés : la clé API (apikey) n'est pas reconnue. Recopiez-la depuis votre espace marchand, "
     "sans espace. (réponse de CinetPay : « AUTH_NOT_FOUND: The apikey is not valid"),
    ("cinetpay", {"site_id": "999999"}, "l'identifiant du site (site_id) ne va pas avec cette clé API"),
    ("feexpay", {"token": "fp_wrong"},
     "FeexPay refuse ces clés : le jeton API (fp_…) est refusé. Recopiez-le depuis le tableau de bord FeexPay"),
])
def test_check_keys_refused_in_french(browser, provider, wrong, refusal):
    account = add_account(browser, provider, **wrong)
    page = page_text(browser.post(f"/owner/accounts/{account.id}/check", headers={"HX-Request": "true"}))
    assert refusal in page and wrong[next(iter(wrong))] not in page


def test_fedapay_environment_picks_the_api_host(browser):
    account = add_account(browser, "fedapay", environment="live")
    page = page_text(browser.post(f"/owner/accounts/{account.id}/check", headers={"HX-Request": "true"}))
    assert "FedaPay refuse ces clés : la clé secrète n'est pas reconnue." in page
    assert "(réponse de FedaPay : « Invalid API key: a sandbox key cannot be used on the live API. »)" in page


def test_check_keys_when_the_provider_is_down(browser, sandbox):
    account = add_account(browser, "cinetpay")
    sandbox.set_knobs(outage=True)
    page = page_text(browser.post(f"/owner/accounts/{account.id}/check", headers={"HX-Request": "true"}))
    assert "CinetPay ne répond pas pour le moment : réessayez plus tard." in page


def test_check_keys_without_javascript_renders_the_list(browser):
    account = add_account(browser, "feexpay")
    page = page_text(browser.post(f"/owner/accounts/{account.id}/check"))
    assert "<html" in page and "Clés acceptées par FeexPay." in page


def test_list_shows_the_webhook_url_to_copy(browser):
    account = add_account(browser, "fedapay")
    page = page_text(browser.get("/owner/accounts/"))
    url = f"{PUBLIC_URL}/webhooks/fedapay/{account.webhook_token}"
    assert re.search(rf'<input type="text" id="webhook-{account.id}" value="{re.escape(url)}" readonly>', page)
    assert f'<button type="button" data-copy="#webhook-{account.id}">Copier</button>' in page
    assert "<script>" not in page and "FedaPay · Test (sandbox)" in page


def test_routers_offer_only_their_owners_accounts(browser, owner, foreign_account):
    router = add_router(owner)
    mine = [add_account(browser, "fedapay"), add_account(browser, "feexpay")]
    response = browser.post(f"/owner/accounts/routers/{router.id}/offer",
                            {"account_id": [str(mine[0].id), str(mine[1].id), str(foreign_account.id), "x"]})
    assert response.status_code == 302 and response.location.endswith(f"/owner/routers/{router.id}")
    db.session.refresh(router)
    assert router.accounts == mine
    browser.post(f"/owner/accounts/routers/{router.id}/offer", {"account_id": [str(mine[1].id)]})
    db.session.refresh(router)
    assert router.accounts == [mine[1]]
    assert "proposé sur : Maquis" in page_text(browser.get("/owner/accounts/"))
    browser.post(f"/owner/accounts/routers/{router.id}/offer")
    db.session.refresh(router)
    assert router.accounts == []


def test_router_card_lists_accounts_as_checkboxes(app, browser, owner):
    router = add_router(owner)
    with app.test_request_context():
        empty = render_template("owner/_router_accounts.html", router=router, accounts=[])
        assert 'href="/owner/accounts/"' in empty and "Ajouter un compte de paiement" in empty
    offered, other = add_account(browser, "cinetpay"), add_account(browser, "feexpay")
    browser.post(f"/owner/accounts/routers/{router.id}/offer", {"account_id": [str(offered.id)]})
    with app.test_request_context():
        card = render_template("owner/_router_accounts.html", router=router, accounts=[offered, other])
    assert f'action="/owner/accounts/routers/{router.id}/offer"' in card and 'name="csrf_token"' in card
    assert re.search(rf'value="{offered.id}" checked>', card)
    assert re.search(rf'value="{other.id}">', card)


def test_deleting_an_account_drops_it_from_routers(browser, owner):
    router = add_router(owner)
    account = add_account(browser, "cinetpay")
    browser.post(f"/owner/accounts/routers/{router.id}/offer", {"account_id": [str(account.id)]})
    assert browser.post(f"/owner/accounts/{account.id}/delete").status_code == 303
    db.session.refresh(router)
    assert router.accounts == []
    assert db.session.execute(text("SELECT count(*) FROM router_account")).scalar() == 0


def test_an_account_orders_used_cannot_be_deleted(browser, owner):
    router = add_router(owner)
    account = add_account(browser, "cinetpay")
    db.session.add(Order(intent="i-1", owner_id=owner.id, router_id=router.id, account_id=account.id,
                         provider="cinetpay", plan_label="1h", profile="1h", amount=100, currency="XOF"))
    db.session.commit()
    # The confirmation page says why at once, with no button to press.
    page = page_text(browser.get(f"/owner/accounts/{account.id}/delete"))
    assert "désactivez-le plutôt" in page and "Oui, supprimer" not in page
    response = browser.post(f"/owner/accounts/{account.id}/delete")
    assert response.status_code == 409 and "désactivez-le plutôt" in page_text(response)
    assert db.session.get(PaymentAccount, account.id) is not None


def test_list_shows_only_own_accounts(browser, foreign_account):
    assert "Autre compte" not in page_text(browser.get("/owner/accounts/"))


def test_pages_need_a_signed_in_owner(app):
    client = app.test_client()
    for url in ("/owner/accounts/", "/owner/accounts/new/fedapay"):
        assert client.get(url).status_code == 302


@pytest.mark.parametrize("provider", FORMS)
def test_a_public_id_belongs_to_one_owner(app, browser, provider):
    """The guide's buy links find the shop by the public id: a second owner cannot take it over."""
    values, public_id = FORMS[provider]
    mine = add_account(browser, provider)
    other = Browser(app.test_client())
    owners.create_owner("other@example.com", "other-password")
    assert other.login("other@example.com", "other-password").status_code == 302

    refused = other.post(f"/owner/accounts/new/{provider}", {**values, "label": "Le même identifiant"})
    page = page_text(refused)
    assert refused.status_code == 422
    assert fields_in_error(page) == [FORMS_PUBLIC_FIELD[provider]]
    assert "Un autre propriétaire a déjà enregistré cet identifiant sur Kiosque" in page
    assert db.session.scalar(db.select(db.func.count(PaymentAccount.id))) == 1

    # Nor by changing an account of its own to that public id.
    elsewhere = {**values, FORMS_PUBLIC_FIELD[provider]: public_id + "0", "label": "Autre boutique"}
    own = other.post(f"/owner/accounts/new/{provider}", elsewhere)
    assert own.status_code == 302
    theirs = db.session.scalar(db.select(PaymentAccount).where(PaymentAccount.owner_id != mine.owner_id))
    assert other.post(f"/owner/accounts/{theirs.id}/edit", {**elsewhere, FORMS_PUBLIC_FIELD[provider]: public_id}
                      ).status_code == 422
    db.session.refresh(theirs)
    assert theirs.public_id == public_id + "0"

    # The owner who has it may have it on a second account (test and live keys of one shop), and edit both.
    second = add_account(browser, provider, label="Deuxième")
    assert second.public_id == mine.public_id == public_id
    assert browser.post(f"/owner/accounts/{mine.id}/edit", {**values, "label": "Renommé"}).status_code == 302


FORMS_PUBLIC_FIELD = {"fedapay": "public_key", "cinetpay": "site_id", "feexpay": "shop_id"}


def test_a_new_account_is_offered_at_once_on_the_owners_only_router(browser, owner):
    router = add_router(owner)
    add_account(browser, "feexpay")
    page = page_text(browser.get("/owner/accounts/"))
    assert f"Compte ajouté et proposé sur votre routeur {router.name}." in page
    db.session.expire_all()
    assert [a.provider for a in db.session.get(Router, router.id).accounts] == ["feexpay"]
    add_router(owner, name="Deuxième")  # with two routers, the owner chooses
    add_account(browser, "cinetpay")
    db.session.expire_all()
    assert [a.provider for a in db.session.get(Router, router.id).accounts] == ["feexpay"]


def test_the_list_says_which_secrets_are_saved_and_how_to_go_live(browser):
    add_account(browser, "fedapay", webhook_secret="")
    page = page_text(browser.get("/owner/accounts/"))
    assert "Clé secrète (sk_…) : enregistré" in re.sub(r"<[^>]+>", "", page)
    assert "Secret du webhook (wh_…) : pas encore saisi" in re.sub(r"<[^>]+>", "", page)
    assert "Passer en production" in page and "Générez et exécutez à nouveau le script du routeur" in page
    assert "Comptes d'essai" not in page  # a real server has none
