"""Owner accounts: creation, sign-in, sessions, passwords and their reset by email, the owner's
own settings (name, language, sale emails, password) and a new email address confirmed by a link."""

import hashlib
import logging

from flask import current_app, url_for
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select

from portal import deferred
from portal.extensions import db
from portal.models import Owner, SaleEmail
from portal.services import notifications

log = logging.getLogger(__name__)


class OwnerError(ValueError):
    """The account cannot be created or changed as asked."""


MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 200
RESET_SALT = "kiosque.password-reset"
EMAIL_CHANGE_SALT = "kiosque.email-change"


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OwnerError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise OwnerError(f"The password may have at most {MAX_PASSWORD_LENGTH} characters.")


def create_owner(email: str, password: str, name: str = "") -> Owner:
    """Create an owner account; emails are unique, case-insensitively."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise OwnerError(f"Not an email address: {email!r}")
    check_password_rules(password)
    if find_owner(email) is not None:
        raise OwnerError(f"An owner with the email {email} already exists.")
    owner = Owner(email=email, name=name)
    owner.set_password(password)
    db.session.add(owner)
    db.session.commit()
    return owner


def find_owner(email: str) -> Owner | None:
    return db.session.scalar(select(Owner).where(func.lower(Owner.email) == email.strip().lower()))


def authenticate(email: str, password: str) -> Owner | None:
    """The owner with these credentials, or None (same answer for unknown email and wrong password)."""
    owner = find_owner(email)
    if owner is None or not owner.check_password(password):
        return None
    return owner


# -- sessions -----------------------------------------------------------------------------------------
# A session names the owner as `<id>.<session version>` (Owner.get_id). Raising the version ends
# every session that carries the old one, copies of the cookie kept from before included.


def owner_for_session(session_id: str) -> Owner | None:
    """The owner a session names, if that session has not been ended since."""
    owner_id, _, version = session_id.partition(".")
    if not (owner_id.isdigit() and version.isdigit()):
        return None  # malformed, or a session from before versions: signed out
    owner = db.session.get(Owner, int(owner_id))
    if owner is None or owner.session_version != int(version):
        return None
    return owner


def end_sessions(owner: Owner) -> None:
    """Sign the owner out everywhere: every session cookie issued so far stops working."""
    owner.session_version = Owner.session_version + 1
    db.session.commit()
    db.session.refresh(owner)
    log.info("owner %s: every session ended", owner.id)


def set_password(owner: Owner, password: str) -> None:
    """Give the owner a new password and end every session (and reset link) issued before."""
    check_password_rules(password)
    owner.set_password(password)
    end_sessions(owner)
    log.info("owner %s: password changed", owner.id)


# -- password reset by email ----------------------------------------------------------------------------
# The link carries the owner's id and a digest of the current password hash, signed and dated:
# it stops working once used (the hash changes), once the password changes otherwise, and after
# PASSWORD_RESET_MAX_AGE seconds.


def _serializer(salt: str = RESET_SALT) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=salt)


def _password_digest(owner: Owner) -> str:
    return hashlib.sha256(owner.password_hash.encode()).hexdigest()[:32]


def reset_token(owner: Owner) -> str:
    return _serializer().dumps({"owner": owner.id, "password": _password_digest(owner)})


def owner_for_reset_token(token: str) -> Owner | None:
    """The owner whose password this link may reset; None when it is forged, expired or already used."""
    try:
        payload = _serializer().loads(token, max_age=current_app.config["PASSWORD_RESET_MAX_AGE"])
    except BadSignature:  # SignatureExpired is one
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("owner"), int):
        return None
    owner = db.session.get(Owner, payload["owner"])
    if owner is None or payload.get("password") != _password_digest(owner):
        return None
    return owner


def request_password_reset(email: str) -> None:
    """Email a reset link if an owner has this address; nothing otherwise, and no way to tell.

    The email leaves after the response, so the answer takes as long either way.
    """
    owner = find_owner(email)
    if owner is not None:
        deferred.after_response(_send_reset_email, owner.id, reset_url(owner))


def reset_url(owner: Owner) -> str:
    return _public_url("owner.auth.reset_password", token=reset_token(owner))


def _public_url(endpoint: str, **values) -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + url_for(endpoint, **values)


def _send_reset_email(owner_id: int, url: str) -> None:
    owner = db.session.get(Owner, owner_id)
    if owner is not None:
        notifications.send_password_reset(owner, url)


# -- the owner's own settings ----------------------------------------------------------------------


class SettingsError(ValueError):
    """A change of the owner's settings is refused; `field` names the form field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def update_profile(owner: Owner, name: str, locale: str, sale_email: SaleEmail) -> None:
    """Name, language of the emails, and one email per sale or a daily summary."""
    owner.name = name.strip()
    owner.locale = locale
    owner.sale_email = sale_email
    db.session.commit()


def change_password(owner: Owner, current: str, new: str) -> None:
    """A new password, given the current one; every session of the owner ends (the caller signs
    this one in again)."""
    if not owner.check_password(current):
        raise SettingsError("current_password", _("Ce n'est pas votre mot de passe actuel."))
    set_password(owner, new)


# -- a new email address, confirmed from a link sent to it ---------------------------------------------
# The link carries the owner's id, the new address and a digest of the current one, signed and
# dated: it works until EMAIL_CHANGE_MAX_AGE, and once (the current address changes with it).


def _email_digest(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def request_email_change(owner: Owner, new_email: str, current_password: str) -> str:
    """Send a confirmation link to `new_email`; returns the address as it will be stored.

    An address another owner has gets no link, and the same answer, so the form tells nobody
    which addresses have accounts; the confirmation checks again.
    """
    if not owner.check_password(current_password):
        raise SettingsError("current_password", _("Ce n'est pas votre mot de passe actuel."))
    email = new_email.strip().lower()
    if email == owner.email:
        raise SettingsError("email", _("C'est déjà l'adresse de votre compte."))
    if find_owner(email) is None:
        token = _serializer(EMAIL_CHANGE_SALT).dumps(
            {"owner": owner.id, "email": email, "from": _email_digest(owner.email)})
        deferred.after_response(_send_email_confirmation, owner.id, email,
                                _public_url("owner.settings.confirm_email", token=token))
    log.info("owner %s: new email address asked for", owner.id)
    return email


def _send_email_confirmation(owner_id: int, email: str, url: str) -> None:
    owner = db.session.get(Owner, owner_id)
    if owner is not None:
        notifications.send_email_confirmation(owner, email, url)


def confirm_email_change(token: str) -> Owner | None:
    """Give the owner the address the link was sent to; None when the link is forged, expired,
    already used, or the address was taken meanwhile. The former address is told."""
    try:
        payload = _serializer(EMAIL_CHANGE_SALT).loads(token, max_age=current_app.config["EMAIL_CHANGE_MAX_AGE"])
    except BadSignature:  # SignatureExpired is one
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("owner"), int) \
            or not isinstance(payload.get("email"), str):
        return None
    owner = db.session.get(Owner, payload["owner"])
    if owner is None or payload.get("from") != _email_digest(owner.email) or find_owner(payload["email"]):
        return None
    former = owner.email
    owner.email = payload["email"]
    db.session.commit()
    log.info("owner %s: email address changed", owner.id)
    deferred.after_response(notifications.send_email_changed_notice, owner.id, former)
    return owner
