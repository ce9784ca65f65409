"""Payment account pages: list, add per provider, change, delete, check the keys, offer on a router."""

from typing import Any, ClassVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from portal import htmx
from portal.blueprints import positive_int
from portal.blueprints.owner import deletion
from portal.blueprints.owner.forms import NAME
from portal.blueprints.owner.routers import load_router
from portal.formatting import network_title
from portal.models import PaymentAccount
from portal.payments import PROVIDERS
from portal.payments.base import CredentialField, PaymentProvider
from portal.services import accounts as account_service

bp = Blueprint("accounts", __name__)

# The names of the environments adapters declare (some providers have a test host beside production).
ENVIRONMENT_LABELS = {"live": _l("Production (live)"), "sandbox": _l("Test (sandbox)")}
KEY = Regexp(r"^[\x21-\x7e]+$", message=_l("Une clé ne contient ni espace ni accent."))


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class AccountForm(FlaskForm):
    """What every account has; `account_form` adds the provider's credential fields."""

    adapter: ClassVar[type[PaymentProvider]]

    label = StringField(_l("Nom du compte"), filters=[_strip], validators=[InputRequired(), Length(max=80), NAME])
    active = BooleanField(_l("Compte actif"), default=True)

    def credentials(self) -> list[Field]:
        """The credential fields, in the provider's order."""
        return [self[f.name] for f in self.adapter.credential_fields]

    def values(self) -> dict[str, Any]:
        secret = {f.name for f in self.adapter.credential_fields if f.secret}
        return {name: f.data for name, f in self._fields.items()
                if name not in secret and name != self.meta.csrf_field_name}

    def secrets(self) -> dict[str, str]:
        return {f.name: self[f.name].data or "" for f in self.adapter.credential_fields if f.secret}


def _credential_field(credential: CredentialField) -> Field:
    """Secrets are password inputs, never filled back; a blank one on edit keeps the stored value."""
    label = _l(credential.label)
    if credential.secret:
        return PasswordField(label, filters=[_strip], validators=[Optional(), Length(max=200), KEY])
    presence = InputRequired() if credential.required else Optional()
    return StringField(label, filters=[_strip], validators=[presence, Length(max=120), KEY])


def account_form(provider: str, account: PaymentAccount | None, **form_args: Any) -> AccountForm:
    """The form of one provider's account, filled from `account` (its secrets excepted)."""
    adapter = PROVIDERS[provider]
    fields: dict[str, Any] = {f.name: _credential_field(f) for f in adapter.credential_fields}
    if len(adapter.api_urls) > 1:
        choices = [SelectChoice(env, ENVIRONMENT_LABELS.get(env, env)) for env in adapter.api_urls]
        fields["environment"] = SelectField(_l("Environnement"), choices=choices, default=choices[0].value)
    if adapter.networks:
        fields["networks"] = SelectMultipleField(_l("Réseaux activés sur votre boutique"),
                                                 choices=[SelectChoice(code, network_title(code))
                                                          for code in adapter.networks],
                                                 widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    form_class = type(f"{adapter.title}AccountForm", (AccountForm,), {"adapter": adapter, **fields})
    initial = None
    if account is not None:
        public = {f.name: account.secrets.get(f.name, "") for f in adapter.credential_fields if not f.secret}
        initial = {"label": account.label, "active": account.active, "environment": account.environment,
                   "networks": account.settings.get("networks", []), **public}
    return form_class(data=initial, **form_args)


@bp.app_template_filter("account_provider")
def account_provider(account: PaymentAccount) -> str:
    """The provider's name, with the environment when the provider has several."""
    adapter = PROVIDERS[account.provider]
    if len(adapter.api_urls) < 2:
        return adapter.title
    return f"{adapter.title} · {ENVIRONMENT_LABELS.get(account.environment, account.environment)}"


@bp.before_request
@login_required
def require_owner():
    """Every account page is for a signed-in owner."""


def load_account(account_id: int) -> PaymentAccount:
    account = account_service.owned_account(current_user, account_id)
    if account is None:
        abort(404)
    return account


def _list_context(**context: Any) -> dict[str, Any]:
    return {"accounts": account_service.owner_accounts(current_user), "providers": PROVIDERS,
            "webhook_url": account_service.webhook_url, "saved_secrets": account_service.saved_secrets,
            "trial_accounts": account_service.trial_accounts(), **context}


@bp.get("/")
def index():
    """List the owner's payment accounts with their webhook URLs."""
    return render_template("owner/accounts.html", **_list_context())


@bp.route("/new/<provider>", methods=("GET", "POST"))
def create(provider: str):
    """Add an account with one provider."""
    if provider not in PROVIDERS:
        abort(404)
    return _edit(provider, None)


@bp.route("/<id:account_id>/edit", methods=("GET", "POST"))
def edit(account_id: int):
    """Change an account; blank secrets keep the stored ones."""
    account = load_account(account_id)
    return _edit(account.provider, account)


def _edit(provider: str, account: PaymentAccount | None):
    form = account_form(provider, account)
    if form.validate_on_submit():
        try:
            saved = account_service.save_account(current_user, account, provider, form.values(), form.secrets())
        except account_service.AccountError as exc:
            form[exc.field].errors.append(str(exc))
        else:
            if account is None and saved.routers:
                flash(_("Compte ajouté et proposé sur votre routeur %(router)s.", router=saved.routers[0].name))
            return redirect(url_for(".index"))
    status = 422 if form.errors else 200
    return render_template("owner/account_form.html", form=form, account=account,
                           provider=PROVIDERS[provider]), status


@bp.route("/<id:account_id>/delete", methods=("GET", "POST"))
def delete(account_id: int):
    """Delete an account that no order used, once confirmed."""
    account = load_account(account_id)
    return deletion.confirm(
        question=_("Supprimer le compte de paiement %(name)s ?", name=account.label),
        consequence=_("Ses clés sont effacées de Kiosque et les routeurs qui le proposaient ne le proposent plus."),
        back=url_for(".edit", account_id=account.id), done=url_for(".index"),
        refusal=account_service.deletion_refused(account), delete=lambda: account_service.delete_account(account))


@bp.post("/<id:account_id>/check")
def check(account_id: int):
    """Try the keys with the provider (HTMX fragment, or the list again without JavaScript)."""
    account = load_account(account_id)
    error = account_service.check_account(account)
    return htmx.render("owner/accounts.html", "owner/_account_check.html",
                       **_list_context(checked=account, check_error=error))


@bp.post("/routers/<id:router_id>/offer")
def offer(router_id: int):
    """Choose which of the owner's accounts a router offers to buyers."""
    router = load_router(router_id)
    account_service.set_router_accounts(router, [i for i in map(positive_int, request.form.getlist("account_id")) if i])
    return redirect(url_for("owner.routers.show", router_id=router.id))
