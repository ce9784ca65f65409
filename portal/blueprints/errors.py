"""Error pages: short, in the visitor's language, never a stack trace."""

from flask import Flask, render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.extensions import db


def message_for(exc: HTTPException) -> str:
    """What an HTTP error means, in the visitor's words."""
    messages = {
        404: _("Cette page n'existe pas."),
        405: _("Cette action n'est pas possible ici."),
        413: _("La requête est trop volumineuse."),
        429: _("Trop de tentatives. Patientez un peu avant de réessayer."),
    }
    return messages.get(exc.code, _("La requête n'a pas pu être traitée."))


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        message = _("Le formulaire a expiré ou n'a pas été envoyé depuis Kiosque. Rechargez la page et réessayez.")
        return render_template("errors/error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return render_template("errors/error.html", code=exc.code, message=message_for(exc)), exc.code

    @app.errorhandler(500)
    def server_error(exc):
        db.session.rollback()
        message = _("Une erreur inattendue s'est produite. Réessayez dans un instant.")
        return render_template("errors/error.html", code=500, message=message), 500
