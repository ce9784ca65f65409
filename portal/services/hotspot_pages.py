"""The hotspot page set Kiosque serves a router, and the one-time link the kit script fetches it with.

Decisions (docs/routeros.md#replacing-loginhtml), for whoever changes them:

- Nothing is overwritten: the script fetches the set into a directory of its own next to the
  current one and points the hotspot's server profiles at it. The owner's pages stay where they
  were (that is the backup, on RouterOS 6 as on 7), and going back is one line on the kit page.
- The link: a random token per generated script; the router keeps only its SHA-256. It serves
  every file of the set (the script fetches each with it) until it expires (LINK_LIFETIME), until
  the check after the script finds the pages in place, or until a newer script replaces it.
  An unknown, expired or replaced token gets the same 404.
"""

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import Router, utcnow

# What the hotspot serves from its directory (docs/routeros.md#pages-and-variables), and the MD5
# the CHAP login needs: the new directory has no md5.js of its own.
PAGES = ("login.html", "alogin.html", "status.html", "logout.html", "redirect.html", "rlogin.html",
         "error.html", "errors.txt", "md5.js")
LINK_LIFETIME = timedelta(hours=1)
DIRECTORY = "kiosque"
TOKEN_BYTES = 24


def kiosque_directory(current: str) -> str:
    """Kiosque's directory next to the current one: on the flash disk when the current one is there."""
    return f"flash/{DIRECTORY}" if current.startswith("flash/") else DIRECTORY


def is_kiosque_directory(directory: str) -> bool:
    return directory == kiosque_directory(directory)


def default_directory(current: str) -> str:
    """RouterOS's own page directory on the same disk, for a router whose earlier value Kiosque never saw."""
    return "flash/hotspot" if current.startswith("flash/") else "hotspot"


def remembered_directories(before: dict[str, str], profiles: list[dict]) -> dict[str, str]:
    """Each server profile's directory before Kiosque's: what it has now unless that is Kiosque's."""
    return {p["name"]: before.get(p["name"], "") if is_kiosque_directory(p["html_directory"]) else p["html_directory"]
            for p in profiles}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(router: Router) -> str:
    """A new token for this router's page set (the previous one dies); the caller commits."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    router.pages_link_hash, router.pages_link_expires_at = _digest(token), utcnow() + LINK_LIFETIME
    return token


def router_for_link(token: str) -> Router | None:
    """The router whose live link this token is, or None."""
    return db.session.scalar(select(Router).where(Router.pages_link_hash == _digest(token),
                                                  Router.pages_link_expires_at > utcnow()))


def close_link(router: Router) -> None:
    """The pages are in place: the link serves nothing more. The caller commits."""
    router.pages_link_hash = router.pages_link_expires_at = None
