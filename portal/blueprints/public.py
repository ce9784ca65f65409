"""Pages for everyone: the front page, the language switch, the health check."""

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from sqlalchemy import text

from portal.extensions import db

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
    target = request.args.get("next", "")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = url_for(".index")
    return redirect(target)


@bp.get("/health")
def health():
    """200 when the database answers."""
    db.session.execute(text("SELECT 1"))
    return {"status": "ok"}
