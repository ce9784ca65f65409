"""Owner accounts."""

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Owner


class OwnerError(ValueError):
    """The account cannot be created as asked."""


MIN_PASSWORD_LENGTH = 8


def create_owner(email: str, password: str, name: str = "") -> Owner:
    """Create an owner account; emails are unique, case-insensitively."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise OwnerError(f"Not an email address: {email!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OwnerError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
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
