"""Owners' payment accounts, and the adapter that talks to each one's provider."""

import json
import os
from http.cookiejar import DefaultCookiePolicy
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.request import getproxies

import requests
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import exists, select

from portal.extensions import db
from portal.models import Order, Owner, PaymentAccount, Router
from portal.payments import PROVIDERS, get_provider
from portal.payments.base import PaymentProvider, ProviderRejected, ProviderUnavailable


# One HTTP session for the whole process: calls to a provider reuse its open TLS connections
# instead of a new handshake per webhook (urllib3's pool is safe to share between threads).
# It keeps no cookies, so nothing one owner's call receives is sent with another's.
_http = requests.Session()
_http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
# requests reads the proxy and CA bundle variables (walking the whole environment) and ~/.netrc
# again at every call. The CA bundle is read once here, as requests would; the environment is
# looked at per call only when it names a proxy, whose no_proxy rules requests applies per host.
_http.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
_http.trust_env = bool(getproxies())


def provider_for(account: PaymentAccount) -> PaymentProvider:
    """The adapter for this account, pointed at the configured API and holding its credentials."""
    adapter = PROVIDERS[account.provider]
    environment = account.environment if account.environment in adapter.api_urls else next(iter(adapter.api_urls))
    base_url = current_app.config[adapter.api_url_setting(environment)]
    return get_provider(account.provider, account.secrets, base_url=base_url,
                        timeout=current_app.config["PROVIDER_TIMEOUT"], session=_http)


class AccountError(ValueError):
    """The account cannot be saved or deleted; `field` names the form field at fault, if any."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field


def owned_account(owner: Owner, account_id: int) -> PaymentAccount | None:
    """The account if this owner has it; None otherwise (the view answers 404 either way)."""
    return db.session.scalar(
        select(PaymentAccount).where(PaymentAccount.id == account_id, PaymentAccount.owner_id == owner.id)
    )


def owner_accounts(owner: Owner) -> list[PaymentAccount]:
    return list(db.session.scalars(
        select(PaymentAccount).where(PaymentAccount.owner_id == owner.id)
        .order_by(PaymentAccount.provider, PaymentAccount.label, PaymentAccount.id)
    ))


def save_account(
    owner: Owner, account: PaymentAccount | None, provider: str, values: Mapping[str, Any], secrets: Mapping[str, str]
) -> PaymentAccount:
    """Create or update an account of `provider` (the account's own when editing).

    `values` holds label, active, environment (for providers with a test host), networks (for
    push providers) and the provider's non-secret credential fields; `secrets` its secret
    fields, where a blank one keeps the stored value so the owner never has to type a key again
    to change something else. An owner with one router has a new account offered there at once.
    """
    created = account is None
    account = stage_account(owner, account, provider, values, secrets)
    if created:
        routers = db.session.scalars(select(Router).where(Router.owner_id == owner.id).limit(2)).all()
        if len(routers) == 1:
            account.routers.append(routers[0])
    db.session.commit()
    return account


def stage_account(
    owner: Owner, account: PaymentAccount | None, provider: str, values: Mapping[str, Any],
    secrets: Mapping[str, str], *, allow_missing_secrets: bool = False,
) -> PaymentAccount:
    """`save_account`'s checks and changes, left in the caller's transaction.

    `allow_missing_secrets`: a required secret nobody gave leaves the account inactive instead
    of refused (a settings file without its secrets).
    """
    adapter = PROVIDERS[provider]
    label = (values.get("label") or "").strip()
    if not label:
        raise AccountError("label", _("Ce champ est obligatoire."))
    stored = account.secrets if account is not None else {}
    credentials = {}
    missing = False
    for f in adapter.credential_fields:
        given = ((secrets if f.secret else values).get(f.name) or "").strip()
        credentials[f.name] = given or (stored.get(f.name, "") if f.secret else "")
        if f.required and not credentials[f.name]:
            if not (f.secret and allow_missing_secrets):
                raise AccountError(f.name, _("Ce champ est obligatoire."))
            missing = True
    environments = list(adapter.api_urls)
    environment = values.get("environment") if len(environments) > 1 else environments[0]
    if environment not in environments:
        raise AccountError("environment", _("Choisissez l'environnement de production ou de test."))
    settings = {}
    if adapter.networks:
        chosen = set(values.get("networks") or ())
        if not chosen or not chosen <= adapter.networks.keys():
            raise AccountError("networks", _("Cochez au moins un réseau parmi ceux proposés."))
        settings["networks"] = [n for n in adapter.networks if n in chosen]

    public_id = credentials[adapter.public_id_field]
    unchanged = account is not None and account.public_id == public_id
    if public_id and not unchanged and public_id_taken(provider, public_id, owner):
        raise AccountError(adapter.public_id_field, _(
            "Un autre propriétaire a déjà enregistré cet identifiant sur Kiosque : les liens d'achat qui le "
            "portent doivent mener à une seule boutique. S'il s'agit bien de votre compte %(provider)s, "
            "contactez l'exploitant de Kiosque.", provider=adapter.title))

    if account is None:
        account = PaymentAccount(owner_id=owner.id, provider=provider)
        db.session.add(account)
    account.label = label
    account.active = bool(values["active"]) and not missing
    account.environment = environment
    account.credentials = json.dumps(credentials)
    account.public_id = public_id
    account.settings = settings
    return account


def missing_credentials(account: PaymentAccount) -> list[str]:
    """The labels (French, untranslated) of the required credentials the account lacks."""
    stored = account.secrets
    return [f.label for f in PROVIDERS[account.provider].credential_fields if f.required and not stored.get(f.name)]


def saved_secrets(account: PaymentAccount) -> list[tuple[str, bool]]:
    """Each secret credential's label (French, untranslated) and whether a value is saved."""
    stored = account.secrets
    return [(f.label, bool(stored.get(f.name))) for f in PROVIDERS[account.provider].credential_fields if f.secret]


def public_id_taken(provider: str, public_id: str, owner: Owner) -> bool:
    """Whether another owner has an account of `provider` with this public id.

    The guide's buy links find the account by its public id alone: it must name one owner's
    shop. One owner may have it on several accounts (sandbox and live keys of the same shop).
    """
    return bool(db.session.scalar(select(exists().where(
        PaymentAccount.provider == provider, PaymentAccount.public_id == public_id,
        PaymentAccount.owner_id != owner.id))))


def deletion_refused(account: PaymentAccount) -> str | None:
    """Why the account cannot be deleted, or None: orders keep needing theirs to check their payment."""
    if db.session.scalar(select(exists().where(Order.account_id == account.id))):
        return _("Des commandes ont été passées avec ce compte : désactivez-le plutôt que de le supprimer.")
    return None


def delete_account(account: PaymentAccount) -> None:
    """Delete an account no order used, unless `deletion_refused` says why not."""
    if (refusal := deletion_refused(account)) is not None:
        raise AccountError(None, refusal)
    db.session.delete(account)
    db.session.commit()


def check_account(account: PaymentAccount) -> str | None:
    """Try the keys with a harmless call: None when the provider accepts them, else why not."""
    adapter = PROVIDERS[account.provider]
    title = adapter.title
    try:
        provider_for(account).check_credentials()
    except ProviderRejected as exc:
        reason = adapter.refusals.get(exc.code or "")
        if reason and exc.provider_message:
            return _("%(provider)s refuse ces clés : %(reason)s (réponse de %(provider)s : « %(message)s »)",
                     provider=title, reason=_(reason), message=exc.provider_message)
        if reason or exc.provider_message:
            return _("%(provider)s refuse ces clés : %(message)s", provider=title,
                     message=_(reason) if reason else exc.provider_message)
        return _("%(provider)s refuse ces clés.", provider=title)
    except ProviderUnavailable:
        return _("%(provider)s ne répond pas pour le moment : réessayez plus tard.", provider=title)
    return None


def set_router_accounts(router: Router, account_ids: Iterable[int]) -> None:
    """Choose the accounts a router offers; ids of accounts its owner does not have are ignored."""
    router.accounts = list(db.session.scalars(
        select(PaymentAccount).where(PaymentAccount.owner_id == router.owner_id,
                                     PaymentAccount.id.in_(list(account_ids)))
    ))
    db.session.commit()


def webhook_url(account: PaymentAccount) -> str:
    """Where the provider sends this account's notifications; the token finds the account."""
    return f"{current_app.config['PUBLIC_URL'].rstrip('/')}/webhooks/{account.provider}/{account.webhook_token}"


def trial_accounts() -> Mapping[str, Mapping[str, str]]:
    """Keys a trial server's stand-in providers accept, by provider: what `flask --app sandbox trial`
    (or any stand-in mounted on the app) puts in `kiosque.trial_accounts`. Empty on a real server."""
    return current_app.extensions.get("kiosque.trial_accounts", {})
