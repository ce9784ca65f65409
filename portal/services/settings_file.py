"""An owner's settings as a file: routers (with their ticket settings), plans, payment accounts
and which routers offer them, and the owner's profile, to carry to another Kiosque server.

The file is JSON with a format version. Secrets (router API passwords, provider keys, webhook
URLs' tokens, the owner's password hash) travel only when asked, encrypted together with a key
derived from a passphrase (scrypt, a random salt kept in the file). An import is all or nothing:
every value is held to the owner pages' checks, names and public ids that belong to someone
else are refused, and nothing is written unless everything passes. It adds and updates; it
never deletes what the file does not name.
"""

import base64
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from flask_babel import gettext as _
from sqlalchemy import exists, select

from portal.extensions import db
from portal.models import Owner, PaymentAccount, Plan, Router, RouterConnection, SaleEmail, UserMode, utcnow
from portal.payments import PROVIDERS, served_countries
from portal.routeros import units
from portal.routeros.client import has_control_character
from portal.services import accounts as account_service
from portal.services import routers as router_service

FORMAT = "kiosque-settings"
VERSION = 1
# scrypt's cost: about 32 MiB and a tenth of a second; an imported file may not ask for more than MAX_N.
SCRYPT_N, SCRYPT_R, SCRYPT_P, MAX_N = 2**15, 8, 1, 2**17

ROUTER_FIELDS = router_service.EDITABLE_FIELDS
PLAN_FIELDS = ("label", "profile", "price", "currency", "time_limit", "data_limit_bytes", "validity", "active",
               "position")
CHARSETS = ("lower", "upper", "upplow", "mix", "mix1", "mix2", "num")
LOCALES = ("fr", "en")
_CURRENCY = re.compile(r"[A-Z]{3}")
_PREFIX = re.compile(r"[A-Za-z0-9]{0,6}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


class SettingsFileError(ValueError):
    """The file cannot be read or imported; the message says where and why."""


@dataclass
class ImportReport:
    """What an import changed, or would change (a dry run), line by line."""

    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    owner_created: bool = False


# -- export -------------------------------------------------------------------------------------------


def export_settings(owner: Owner, passphrase: str | None = None) -> dict[str, Any]:
    """The owner's settings; with a passphrase, their secrets too, encrypted with it."""
    accounts = account_service.owner_accounts(owner)
    keys = {account.id: f"{account.provider}-{n}" for n, account in enumerate(accounts, start=1)}
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": utcnow().isoformat(timespec="seconds"),
        "owner": {"email": owner.email, "name": owner.name, "locale": owner.locale,
                  "sale_email": owner.sale_email.value},
        "routers": [_router_entry(router, keys) for router in owner.routers],
        "accounts": [_account_entry(account, keys[account.id]) for account in accounts],
    }
    if passphrase is not None:
        hidden = {
            "owner_password_hash": owner.password_hash,
            "routers": {router.name: router.api_password for router in owner.routers},
            "accounts": {keys[a.id]: {"credentials": {f.name: a.secrets.get(f.name, "")
                                                      for f in PROVIDERS[a.provider].credential_fields if f.secret},
                                      "webhook_token": a.webhook_token} for a in accounts},
        }
        document["secrets"] = seal(hidden, passphrase)
    return document


def _router_entry(router: Router, keys: dict[int, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {name: getattr(router, name) for name in ROUTER_FIELDS}
    entry["user_mode"] = router.user_mode.value
    entry["slug"] = router.slug
    entry["plans"] = [{name: getattr(plan, name) for name in PLAN_FIELDS} for plan in router.plans]
    entry["accounts"] = [keys[a.id] for a in router.accounts]
    return entry


def _account_entry(account: PaymentAccount, key: str) -> dict[str, Any]:
    adapter = PROVIDERS[account.provider]
    public = {f.name: account.secrets.get(f.name, "") for f in adapter.credential_fields if not f.secret}
    return {"key": key, "provider": account.provider, "label": account.label, "environment": account.environment,
            "active": account.active, "settings": account.settings, "credentials": public}


def seal(payload: dict[str, Any], passphrase: str) -> dict[str, Any]:
    """Encrypt `payload` with a key derived from the passphrase and a new random salt."""
    salt = secrets.token_bytes(16)
    token = Fernet(_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(json.dumps(payload).encode())
    return {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
            "salt": base64.b64encode(salt).decode(), "data": token.decode()}


def unseal(sealed: Any, passphrase: str) -> dict[str, Any]:
    """The payload `seal` encrypted; SettingsFileError for a wrong passphrase or a damaged block."""
    try:
        if sealed.get("kdf") != "scrypt" or not all(isinstance(sealed.get(k), int) for k in "nrp"):
            raise ValueError
        if not 2 <= sealed["n"] <= MAX_N or not (1 <= sealed["r"] <= 16 and 1 <= sealed["p"] <= 4):
            raise ValueError
        salt = base64.b64decode(sealed["salt"], validate=True)
        cipher = Fernet(_key(passphrase, salt, sealed["n"], sealed["r"], sealed["p"]))
        payload = json.loads(cipher.decrypt(sealed["data"].encode()))
    except InvalidToken:
        raise SettingsFileError(_("Phrase secrète incorrecte : les secrets du fichier ne s'ouvrent pas avec elle."))
    except (AttributeError, KeyError, TypeError, ValueError):
        raise SettingsFileError(_("Le bloc des secrets du fichier est abîmé."))
    if not isinstance(payload, dict):
        raise SettingsFileError(_("Le bloc des secrets du fichier est abîmé."))
    return payload


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return base64.urlsafe_b64encode(Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode()))


# -- import -------------------------------------------------------------------------------------------


def read_document(raw: bytes | str) -> dict[str, Any]:
    """The file's JSON object, of a format and version this Kiosque knows."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):  # includes a file that is not UTF-8
        raise SettingsFileError(_("Ce fichier n'est pas un fichier de réglages Kiosque (JSON illisible)."))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SettingsFileError(_("Ce fichier n'est pas un fichier de réglages Kiosque."))
    if document.get("version") != VERSION:
        raise SettingsFileError(_("Version de fichier inconnue (%(version)s) : ce Kiosque lit la version "
                                  "%(known)s. Exportez à nouveau depuis un Kiosque à jour.",
                                  version=str(document.get("version"))[:20], known=VERSION))
    return document


def import_settings(owner: Owner | None, document: dict[str, Any], *, secrets_passphrase: str | None = None,
                    from_owner_page: bool = False, dry_run: bool = False) -> ImportReport:
    """Bring the file's settings into `owner`'s (an owner made from the file when None), in one transaction.

    From the owner's page, secrets are never read: new routers wait for their API password and
    new accounts for their keys (inactive until then); existing ones keep theirs.
    """
    report = ImportReport()
    try:
        hidden = _hidden(document, secrets_passphrase, from_owner_page, report)
        owner = _owner(owner, _section(document, "owner", dict), hidden, report, from_owner_page)
        accounts = _import_accounts(owner, _section(document, "accounts", list), hidden, report)
        _import_routers(owner, _section(document, "routers", list), accounts, hidden, report)
        db.session.flush()
    except (SettingsFileError, router_service.RouterSettingsError, account_service.AccountError) as exc:
        db.session.rollback()
        raise SettingsFileError(str(exc)) from None
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    if not report.changes:
        report.notes.insert(0, _("Rien à changer : vos réglages sont déjà ceux du fichier."))
    return report


def _section(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind):
        raise SettingsFileError(_("Fichier incomplet : la partie « %(name)s » manque ou est abîmée.", name=name))
    return value


def _hidden(document: dict[str, Any], passphrase: str | None, from_owner_page: bool,
            report: ImportReport) -> dict[str, Any]:
    """The file's decrypted secrets, or nothing (no secrets in it, or an import from the owner's page)."""
    if "secrets" not in document:
        return {}
    if from_owner_page:
        report.notes.append(_("Les secrets du fichier sont ignorés ici : tapez mots de passe et clés sur les pages "
                              "du routeur et du compte."))
        return {}
    if passphrase is None:
        raise SettingsFileError(_("Ce fichier contient des secrets chiffrés : donnez sa phrase secrète."))
    return unseal(document["secrets"], passphrase)


def _owner(owner: Owner | None, entry: dict[str, Any], hidden: dict[str, Any], report: ImportReport,
           from_owner_page: bool) -> Owner:
    name = _text(entry, "name", 120, context=_("Propriétaire"), required=False)
    locale = _choice(entry, "locale", LOCALES, context=_("Propriétaire"))
    sale_email = SaleEmail(_choice(entry, "sale_email", tuple(SaleEmail), context=_("Propriétaire")))
    if owner is None:
        email = _text(entry, "email", 254, context=_("Propriétaire")).strip().lower()
        if not _EMAIL.fullmatch(email):
            raise SettingsFileError(_("Propriétaire : adresse e-mail invalide."))
        owner = Owner(email=email, name=name, locale=locale, sale_email=sale_email)
        password_hash = hidden.get("owner_password_hash")
        if isinstance(password_hash, str) and password_hash:
            owner.password_hash = password_hash
        else:
            owner.set_password(secrets.token_urlsafe(32))  # no one knows it: the operator sets one
            report.notes.append(_("Le propriétaire n'a pas encore de mot de passe connu : donnez-lui-en un "
                                  "(owner set-password), ou qu'il le choisisse par « Mot de passe oublié »."))
        db.session.add(owner)
        db.session.flush()  # its id: what the owner's accounts and routers point at
        report.owner_created = True
        report.changes.append(_("Propriétaire %(email)s : créé.", email=email))
        return owner
    changed = [label for label, old, new in ((_("nom"), owner.name, name), (_("langue"), owner.locale, locale),
                                             (_("e-mails de vente"), owner.sale_email, sale_email)) if old != new]
    owner.name, owner.locale, owner.sale_email = name, locale, sale_email
    if changed:
        report.changes.append(_("Votre profil : %(fields)s modifiés.", fields=", ".join(changed)))
    return owner


def _import_accounts(owner: Owner, entries: list[Any], hidden: dict[str, Any],
                     report: ImportReport) -> dict[str, PaymentAccount]:
    """Each account of the file, matched to the owner's by provider and name; the file's keys to them."""
    existing: dict[tuple[str, str], list[PaymentAccount]] = {}
    if owner.id is not None:
        for account in account_service.owner_accounts(owner):
            existing.setdefault((account.provider, account.label), []).append(account)
    by_key: dict[str, PaymentAccount] = {}
    hidden_accounts = hidden.get("accounts") if isinstance(hidden.get("accounts"), dict) else {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise SettingsFileError(_("Fichier abîmé : un compte de paiement n'est pas un objet."))
        key = _text(entry, "key", 40, context=_("Compte de paiement"))
        provider = _choice(entry, "provider", tuple(PROVIDERS), context=key)
        label = _text(entry, "label", 80, context=key)
        context = _("Compte %(provider)s « %(label)s »", provider=PROVIDERS[provider].title, label=label)
        if key in by_key:
            raise SettingsFileError(_("%(context)s : la clé %(key)s apparaît deux fois.", context=context, key=key))
        matches = existing.get((provider, label), [])
        if len(matches) > 1:
            raise SettingsFileError(_("%(context)s : vous avez plusieurs comptes de ce nom ; renommez-les avant "
                                      "d'importer.", context=context))
        account = matches[0] if matches else None
        values, secret_values, token = _account_values(entry, hidden_accounts.get(key), context)
        before = _account_state(account)
        try:
            saved = account_service.stage_account(owner, account, provider, {**values, "label": label},
                                                  secret_values, allow_missing_secrets=True)
        except account_service.AccountError as exc:
            raise SettingsFileError(f"{context} : {exc}") from None
        if account is None and token:
            if db.session.scalar(select(exists().where(PaymentAccount.webhook_token == token))):
                raise SettingsFileError(_("%(context)s : son URL de notification est déjà celle d'un autre compte "
                                          "sur ce serveur.", context=context))
            saved.webhook_token = token
        missing = account_service.missing_credentials(saved)
        if account is None:
            report.changes.append(_("%(context)s : ajouté.", context=context))
        elif _account_state(saved) != before:
            report.changes.append(_("%(context)s : modifié.", context=context))
        if missing:
            report.notes.append(_("%(context)s : à compléter (%(fields)s), inactif d'ici là.", context=context,
                                  fields=", ".join(_(label) for label in missing)))
        by_key[key] = saved
    return by_key


def _account_values(entry: dict[str, Any], hidden: Any, context: str) -> tuple[dict, dict, str | None]:
    credentials = entry.get("credentials")
    settings = entry.get("settings")
    if not isinstance(credentials, dict) or not isinstance(settings, dict):
        raise SettingsFileError(_("%(context)s : clés ou réglages abîmés.", context=context))
    values: dict[str, Any] = {"active": _flag(entry, "active", context),
                              "environment": entry.get("environment"), "networks": settings.get("networks")}
    for name, value in credentials.items():
        values[name] = _plain(value, 120, context)
    secret_values, token = {}, None
    if isinstance(hidden, dict):
        given = hidden.get("credentials")
        secret_values = {name: _plain(v, 200, context) for name, v in given.items()} if isinstance(given, dict) else {}
        token = hidden.get("webhook_token") if isinstance(hidden.get("webhook_token"), str) else None
        if token is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,48}", token):
            raise SettingsFileError(_("%(context)s : URL de notification abîmée.", context=context))
    return values, secret_values, token


def _account_state(account: PaymentAccount | None) -> tuple | None:
    if account is None:
        return None
    return account.label, account.active, account.environment, account.credentials, account.settings


def _import_routers(owner: Owner, entries: list[Any], accounts: dict[str, PaymentAccount], hidden: dict[str, Any],
                    report: ImportReport) -> None:
    passwords = hidden.get("routers") if isinstance(hidden.get("routers"), dict) else {}
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise SettingsFileError(_("Fichier abîmé : un routeur n'est pas un objet."))
        values = _router_values(entry)
        name = values["name"]
        context = _("Routeur « %(name)s »", name=name)
        if name in seen:
            raise SettingsFileError(_("%(context)s : nommé deux fois dans le fichier.", context=context))
        seen.add(name)
        router = None
        if owner.id is not None:
            router = db.session.scalar(select(Router).where(Router.owner_id == owner.id, Router.name == name))
        password = passwords.get(name) if isinstance(passwords.get(name), str) else ""
        before = {n: getattr(router, n) for n in ROUTER_FIELDS} if router else None
        try:
            saved = router_service.stage_router(owner, router, values, password, password_required=False)
        except router_service.RouterSettingsError as exc:
            raise SettingsFileError(f"{context} : {exc}") from None
        if router is None:
            slug = _text(entry, "slug", 32, context=context)
            if not re.fullmatch(r"[A-Za-z0-9_-]{8,32}", slug):
                raise SettingsFileError(_("%(context)s : identifiant public abîmé.", context=context))
            if db.session.scalar(select(exists().where(Router.slug == slug))):
                raise SettingsFileError(_("%(context)s : son identifiant public (%(slug)s, dans les liens de sa page "
                                          "de connexion) est déjà celui d'un autre routeur sur ce serveur.",
                                          context=context, slug=slug))
            saved.slug = slug
            report.changes.append(_("%(context)s : ajouté.", context=context))
            if not password:
                report.notes.append(_("%(context)s : tapez le mot de passe de son API dans « Modifier ».",
                                      context=context))
        else:
            changed = [n for n in ROUTER_FIELDS if before[n] != getattr(saved, n)]
            if changed:
                report.changes.append(_("%(context)s : modifié (%(fields)s).", context=context,
                                        fields=", ".join(changed)))
        if saved.connection == RouterConnection.TUNNEL and (before is None or before["connection"] != saved.connection):
            report.notes.append(_("%(context)s : sur ce serveur, son tunnel a une autre adresse et une autre clé : "
                                  "exécutez de nouveau le script « Installer Kiosque » sur le routeur.",
                                  context=context))
        _import_plans(saved, entry.get("plans"), context, report)
        offered = entry.get("accounts")
        if not isinstance(offered, list) or not all(isinstance(k, str) and k in accounts for k in offered):
            raise SettingsFileError(_("%(context)s : ses comptes proposés ne sont pas tous dans le fichier.",
                                      context=context))
        wanted = [accounts[k] for k in offered]
        added = [a for a in wanted if a not in saved.accounts]
        if added:
            saved.accounts.extend(added)
            report.changes.append(_("%(context)s : propose %(accounts)s.", context=context,
                                    accounts=", ".join(a.label for a in added)))


def _router_values(entry: dict[str, Any]) -> dict[str, Any]:
    """The router's settings, held to the router form's rules."""
    name = _text(entry, "name", 80, context=_("Routeur"))
    context = _("Routeur « %(name)s »", name=name)
    connection = _choice(entry, "connection", tuple(RouterConnection), context=context)
    # A router on Kiosque's tunnel is reached at the tunnel address this server gives it.
    host = _text(entry, "host", router_service.HOST_MAX_LENGTH, context=context,
                 required=connection == RouterConnection.DIRECT)
    dns_name = _text(entry, "dns_name", router_service.HOST_MAX_LENGTH, context=context, required=False)
    if (host and not router_service.is_host(host)) or (dns_name and not router_service.is_host(dns_name)):
        raise SettingsFileError(_("%(context)s : adresse IP ou nom d'hôte attendu.", context=context))
    user_mode = _choice(entry, "user_mode", tuple(UserMode), context=context)
    charset = _choice(entry, "charset", CHARSETS, context=context)
    if charset == "num" and user_mode != UserMode.VOUCHER:
        raise SettingsFileError(_("%(context)s : les codes en chiffres seulement n'existent qu'en mode voucher.",
                                  context=context))
    country = _choice(entry, "country", tuple(served_countries()), context=context)
    prefix = _text(entry, "prefix", 6, context=context, required=False)
    currency = _text(entry, "currency", 3, context=context)
    notify_email = _text(entry, "notify_email", 254, context=context, required=False)
    if not _PREFIX.fullmatch(prefix) or not _CURRENCY.fullmatch(currency) \
            or (notify_email and not _EMAIL.fullmatch(notify_email)):
        raise SettingsFileError(_("%(context)s : préfixe, devise ou e-mail de notification invalide.",
                                  context=context))
    return {
        "name": name, "connection": RouterConnection(connection), "host": host, "port": _number(entry, "port", 1, 65535, context),
        "use_tls": _flag(entry, "use_tls", context), "tls_verify": _flag(entry, "tls_verify", context),
        "api_username": _text(entry, "api_username", 80, context=context),
        "hotspot_server": _text(entry, "hotspot_server", 80, context=context), "dns_name": dns_name,
        "user_mode": UserMode(user_mode), "name_length": _number(entry, "name_length", 3, 8, context),
        "charset": charset, "prefix": prefix, "currency": currency, "country": country, "notify_email": notify_email,
    }


def _import_plans(router: Router, entries: Any, router_context: str, report: ImportReport) -> None:
    if not isinstance(entries, list):
        raise SettingsFileError(_("%(context)s : liste des forfaits abîmée.", context=router_context))
    existing = {plan.label: plan for plan in router.plans} if router.id is not None else {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise SettingsFileError(_("%(context)s : un forfait n'est pas un objet.", context=router_context))
        label = _text(entry, "label", 60, context=router_context)
        context = _("%(router)s, forfait « %(label)s »", router=router_context, label=label)
        time_limit = _text(entry, "time_limit", 20, context=context, required=False)
        try:
            time_limit = units.format_duration(units.parse_duration(time_limit)) if time_limit else ""
        except ValueError:
            raise SettingsFileError(_("%(context)s : durée MikroTik attendue, par exemple 30m, 1h, 1d2h ou 1w.",
                                      context=context)) from None
        values = {
            "label": label, "profile": _text(entry, "profile", 80, context=context),
            "price": _number(entry, "price", 1, 10_000_000, context),
            "currency": _text(entry, "currency", 3, context=context), "time_limit": time_limit,
            "data_limit_bytes": _number(entry, "data_limit_bytes", 0, 2**62, context),
            "validity": _text(entry, "validity", 20, context=context, required=False),
            "active": _flag(entry, "active", context), "position": _number(entry, "position", 0, 1000, context),
        }
        if not _CURRENCY.fullmatch(values["currency"]):
            raise SettingsFileError(_("%(context)s : code de devise à trois lettres attendu.", context=context))
        plan = existing.get(label)
        if plan is None:
            if label in {p.label for p in router.plans}:
                raise SettingsFileError(_("%(context)s : nommé deux fois dans le fichier.", context=context))
            router.plans.append(Plan(**values))
            report.changes.append(_("%(context)s : ajouté.", context=context))
            continue
        changed = [n for n in PLAN_FIELDS if getattr(plan, n) != values[n]]
        for name in changed:
            setattr(plan, name, values[name])
        if changed:
            report.changes.append(_("%(context)s : modifié (%(fields)s).", context=context, fields=", ".join(changed)))


# -- checks of single values, with the place they come from ---------------------------------------------


def _plain(value: Any, max_length: int, context: str) -> str:
    if not isinstance(value, str) or len(value) > max_length or has_control_character(value):
        raise SettingsFileError(_("%(context)s : valeur invalide.", context=context))
    return value


def _text(entry: dict[str, Any], name: str, max_length: int, *, context: str, required: bool = True) -> str:
    value = entry.get(name, "" if not required else None)
    if not isinstance(value, str) or len(value) > max_length or has_control_character(value) \
            or (required and not value.strip()):
        raise SettingsFileError(_("%(context)s : « %(field)s » manque ou est invalide.", context=context, field=name))
    return value.strip()


def _choice(entry: dict[str, Any], name: str, choices: tuple, *, context: str) -> str:
    value = entry.get(name)
    if value not in choices:
        raise SettingsFileError(_("%(context)s : « %(field)s » n'est pas une valeur connue.", context=context,
                                  field=name))
    return value


def _number(entry: dict[str, Any], name: str, low: int, high: int, context: str) -> int:
    value = entry.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SettingsFileError(_("%(context)s : « %(field)s » doit être un nombre entre %(low)s et %(high)s.",
                                  context=context, field=name, low=low, high=high))
    return value


def _flag(entry: dict[str, Any], name: str, context: str) -> bool:
    value = entry.get(name)
    if not isinstance(value, bool):
        raise SettingsFileError(_("%(context)s : « %(field)s » doit valoir true ou false.", context=context,
                                  field=name))
    return value
