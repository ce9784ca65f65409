"""Pages for everyone: the front page, the language switch, the health check, a router's hotspot pages."""

from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import force_locale
from sqlalchemy import text

from portal.extensions import db, limiter
from portal.services import hotspot_pages, setup_kit

bp = Blueprint("public", __name__)


@bp.get("/")
def index():
    """What Kiosque is, and the way in for owners."""
    return render_template("index.html")


@bp.get("/lang/<code>")
def set_language(code: str):
    """Remember the visitor's language and go back where they were (on this site only)."""
    if code in current_app.config["LANGUAGES"]:
        session["lang"] = code
    return redirect(local_path(request.args.get("next", "")) or url_for(".index"))


def local_path(target: str) -> str | None:
    """`target` if it is a path on this site, else None.

    Browsers drop tabs and line breaks inside a URL and read a backslash as a slash, so
    `/%09/evil.com` would take them to `//evil.com`, another site; a line break would also break
    the Location header. Any such character (blank, control, backslash), and anything with a
    scheme or a host, is refused.
    """
    if not target.startswith("/") or any(ch.isspace() or not ch.isprintable() or ch == "\\" for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target


@bp.get("/health")
def health():
    """200 when the database answers."""
    db.session.execute(text("SELECT 1"))
    return {"status": "ok"}


@bp.get("/p/<token>/<name>")
@limiter.limit(lambda: current_app.config["HOTSPOT_PAGES_RATE_LIMIT"])
def hotspot_page(token: str, name: str):
    """One file of a router's hotspot page set, fetched by its kit script through the one-time link.

    Unknown, expired or replaced links, and unknown files, get the same 404.
    """
    router = hotspot_pages.router_for_link(token)
    if router is None or name not in hotspot_pages.PAGES:
        abort(404)
    if name == "login.html":
        body = setup_kit.login_page(router)
    else:
        with force_locale("fr"):
            body = render_template(f"hotspot/{name}", router=router)
    mimetype = {"txt": "text/plain", "js": "text/javascript"}.get(name.rpartition(".")[2], "text/html")
    return Response(body, mimetype=mimetype, headers={"Cache-Control": "no-store"})
