"""An owner's settings as a file: `flask config export` / `config import` between two databases (the
suite's and a second SQLite file, as two Kiosque servers), secrets encrypted with a passphrase,
all-or-nothing imports, and the settings page's download and upload, which never carry secrets."""

import io
import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from portal import create_app
from portal.extensions import db
from portal.models import Owner, PaymentAccount, Plan, Router
from portal.services import accounts as account_service
from portal.services import settings_file
from tests.conftest import CREDENTIALS, SECRETS, Browser, page_text
from tests.factories import make_owner, make_plan, make_router

PASSPHRASE = "une phrase assez longue"
SECRETS.add(PASSPHRASE)
# The operator's VPN on both servers: the documentation ranges the routers here are in.
ROUTER_NETWORKS = "192.0.2.0/24,198.51.100.0/24"


@pytest.fixture
def app_config(app_config) -> dict:
    return {**app_config, "ROUTER_ALLOWED_NETWORKS": ROUTER_NETWORKS}


def seed(owner: Owner) -> Router:
    """Two routers with ticket settings and plans, two accounts (one offered on the first router)."""
    router = make_router(owner, name="Maquis Akwa", host="192.0.2.10", prefix="MA", name_length=5,
                         user_mode="up", charset="mix", notify_email="caisse@maquis.test",
                         api_password="r0uter-Secret!")
    make_plan(router, label="1 heure", profile="1h", price=200, time_limit="1h", position=0)
    make_plan(router, label="1 jour", profile="1d", price=500, time_limit="1d", data_limit_bytes=10**9, position=1,
              validity="1d")
    make_router(owner, name="Buvette", host="198.51.100.7", port=8729, use_tls=True, tls_verify=False)
    fedapay = account_service.save_account(owner, None, "fedapay", {
        "label": "FedaPay test", "active": True, "environment": "sandbox", **CREDENTIALS["fedapay"]},
        CREDENTIALS["fedapay"])
    account_service.save_account(owner, None, "feexpay", {
        "label": "FeexPay", "active": True, "networks": ["mtn", "moov"], **CREDENTIALS["feexpay"]},
        CREDENTIALS["feexpay"])
    account_service.set_router_accounts(router, [fedapay.id])
    return router


@pytest.fixture
def second_server(tmp_path):
    """Another Kiosque server: its own SQLite database and its own encryption key."""
    other = create_app({"ENV": "testing", "TESTING": True, "SECRET_KEY": "other-secret",
                        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'second.db'}",
                        "ROUTER_ALLOWED_NETWORKS": ROUTER_NETWORKS})
    with other.app_context():
        db.create_all()
    yield other  # the test enters its context when it works there
    with other.app_context():
        db.engine.dispose()


def settings_of(email: str) -> dict:
    """What an owner has, in a form two databases can be compared with (ids and dates aside)."""
    db.session.expire_all()
    owner = db.session.scalar(select(Owner).where(Owner.email == email))
    return {
        "owner": (owner.name, owner.locale, owner.sale_email),
        "routers": [(r.name, r.slug, r.host, r.port, r.use_tls, r.tls_verify, r.api_username, r.api_password,
                     r.user_mode, r.name_length, r.charset, r.prefix, r.notify_email,
                     [(p.label, p.profile, p.price, p.time_limit, p.data_limit_bytes, p.validity, p.position)
                      for p in r.plans], sorted(a.label for a in r.accounts)) for r in owner.routers],
        "accounts": sorted((a.provider, a.label, a.environment, a.active, a.secrets, a.public_id, a.settings,
                            a.webhook_token) for a in owner.accounts),
    }


def test_export_with_secrets_and_import_on_another_server_carry_everything(app, second_server, tmp_path):
    owner = make_owner("akwa@example.com", password="akwa-password")
    seed(owner)
    exported = app.test_cli_runner().invoke(
        args=["config", "export", "--owner", "Akwa@Example.com", "--include-secrets", "--output",
              str(tmp_path / "akwa.json")], input=PASSPHRASE + "\n")
    assert exported.exit_code == 0, exported.output
    text = (tmp_path / "akwa.json").read_text()
    for secret in ("r0uter-Secret!", CREDENTIALS["fedapay"]["secret_key"], CREDENTIALS["feexpay"]["token"],
                   owner.password_hash, owner.accounts[0].webhook_token):
        assert secret not in text  # encrypted, as the whole block
    before = settings_of("akwa@example.com")

    with second_server.app_context():
        runner = second_server.test_cli_runner()
        dry = runner.invoke(args=["config", "import", str(tmp_path / "akwa.json"), "--dry-run"],
                            input=PASSPHRASE + "\n")
        assert dry.exit_code == 0, dry.output
        assert "Propriétaire akwa@example.com : créé." in dry.output
        assert "Routeur « Maquis Akwa » : ajouté." in dry.output
        assert "Dry run: nothing was changed." in dry.output
        assert db.session.scalar(select(func.count(Owner.id))) == 0

        done = runner.invoke(args=["config", "import", str(tmp_path / "akwa.json")], input=PASSPHRASE + "\n")
        assert done.exit_code == 0, done.output
        assert settings_of("akwa@example.com") == before
        assert Browser(second_server.test_client()).login("akwa@example.com", "akwa-password").status_code == 302

        again = runner.invoke(args=["config", "import", str(tmp_path / "akwa.json")], input=PASSPHRASE + "\n")
        assert again.exit_code == 0 and "Rien à changer" in again.output
        assert settings_of("akwa@example.com") == before


def test_an_import_is_all_or_nothing_and_says_why_it_refuses(app, second_server):
    owner = make_owner("akwa@example.com")
    seed(owner)
    document = settings_file.export_settings(owner, PASSPHRASE)

    with second_server.app_context():
        someone = make_owner("other@example.com")
        taken = make_router(someone, name="Ailleurs")
        buvette = next(r for r in document["routers"] if r["name"] == "Buvette")
        taken.slug = buvette["slug"]  # a router's public id is someone else's here
        db.session.commit()

        def refused(doc, passphrase=PASSPHRASE) -> str:
            with pytest.raises(settings_file.SettingsFileError) as caught:
                settings_file.import_settings(None, json.loads(json.dumps(doc)), secrets_passphrase=passphrase)
            assert db.session.scalar(select(func.count(Owner.id))) == 1  # nothing of the file was written
            assert db.session.scalar(select(func.count(Router.id))) == 1
            assert db.session.scalar(select(func.count(PaymentAccount.id))) == 0
            return str(caught.value)

        assert "Buvette" in refused(document) and "identifiant public" in refused(document)
        taken.slug = "elsewhere-slug-0001"
        db.session.commit()
        assert refused(document, "not the passphrase").startswith("Phrase secrète incorrecte")
        assert "phrase secrète" in refused(document, None)
        with pytest.raises(settings_file.SettingsFileError, match="Version de fichier inconnue"):
            settings_file.read_document(json.dumps({**document, "version": 2}))
        bad_plan = json.loads(json.dumps(document))
        next(r for r in bad_plan["routers"] if r["name"] == "Maquis Akwa")["plans"][1]["price"] = -5
        assert "forfait « 1 jour »" in refused(bad_plan) and "price" in refused(bad_plan)
        bad_offer = json.loads(json.dumps(document))
        bad_offer["routers"][-1]["accounts"] = ["fedapay-9"]
        assert "comptes proposés" in refused(bad_offer)

        report = settings_file.import_settings(None, document, secrets_passphrase=PASSPHRASE)
        assert report.owner_created and db.session.scalar(select(func.count(Router.id))) == 3


def test_another_owners_public_id_is_refused(app, second_server):
    owner = make_owner("akwa@example.com")
    seed(owner)
    document = settings_file.export_settings(owner)
    with second_server.app_context():
        account_service.save_account(make_owner("first@example.com"), None, "feexpay", {
            "label": "FeexPay", "active": True, "networks": ["mtn"], **CREDENTIALS["feexpay"]}, CREDENTIALS["feexpay"])
        with pytest.raises(settings_file.SettingsFileError, match="Compte FeexPay « FeexPay » : Un autre propriétaire"):
            settings_file.import_settings(None, document)
        assert db.session.scalar(select(func.count(Router.id))) == 0


def test_the_settings_page_downloads_and_uploads_without_secrets(app, browser, owner):
    router = seed(owner)
    downloaded = browser.get("/owner/settings/export")
    assert downloaded.status_code == 200
    assert downloaded.headers["Content-Disposition"] == "attachment; filename=kiosque-settings.json"
    text = downloaded.get_data(as_text=True)
    for secret in ("r0uter-Secret!", CREDENTIALS["fedapay"]["secret_key"], CREDENTIALS["fedapay"]["webhook_secret"],
                   CREDENTIALS["feexpay"]["token"], router.accounts[0].webhook_token, owner.password_hash):
        assert secret not in text
    document = json.loads(text)
    akwa = next(r for r in document["routers"] if r["name"] == "Maquis Akwa")
    assert "secrets" not in document and akwa["prefix"] == "MA"

    # Changed on the page, then brought back by the file: existing secrets stay.
    db.session.get(Plan, router.plans[0].id).price = 250
    db.session.get(Router, router.id).name_length = 7
    db.session.commit()
    document["routers"].append({**akwa, "name": "Nouveau", "slug": "nouveau-routeur-01",
                                "accounts": ["feexpay-2"]})
    document["accounts"].append({**document["accounts"][0], "key": "fedapay-3", "label": "FedaPay live",
                                 "environment": "live", "credentials": {"public_key": ""}})
    document["secrets"] = settings_file.seal({"routers": {"Nouveau": "sneaked"}}, PASSPHRASE)
    uploaded = browser.post("/owner/settings/import", {"settings": (io.BytesIO(json.dumps(document).encode()),
                                                                     "kiosque-settings.json")},
                            content_type="multipart/form-data")
    assert uploaded.status_code == 200, page_text(uploaded)
    page = page_text(uploaded)
    assert "Routeur « Maquis Akwa », forfait « 1 heure » : modifié (price)." in page
    assert "Routeur « Maquis Akwa » : modifié (name_length)." in page
    assert "Routeur « Nouveau » : ajouté." in page
    assert "Les secrets du fichier sont ignorés ici" in page
    assert "Compte FedaPay « FedaPay live » : à compléter (Clé secrète (sk_…)), inactif d'ici là." in page
    db.session.expire_all()
    assert db.session.get(Plan, router.plans[0].id).price == 200
    kept = db.session.get(Router, router.id)
    assert kept.name_length == 5 and kept.api_password == "r0uter-Secret!"
    new = db.session.scalar(select(Router).where(Router.name == "Nouveau"))
    assert new.api_password == "" and new.owner_id == owner.id and [a.label for a in new.accounts] == ["FeexPay"]
    live = db.session.scalar(select(PaymentAccount).where(PaymentAccount.label == "FedaPay live"))
    assert live.active is False and live.secrets["secret_key"] == ""
    assert "Le mot de passe de l'API n'est pas encore saisi" in page_text(browser.get(f"/owner/routers/{new.id}"))

    broken = browser.post("/owner/settings/import", {"settings": (io.BytesIO(b"{not json"), "x.json")},
                          content_type="multipart/form-data")
    assert broken.status_code == 422 and "JSON illisible" in page_text(broken)
