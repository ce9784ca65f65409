"""Provider callbacks: the raw request in, one service call, a status code out."""

from flask import Blueprint, request

from portal.extensions import csrf
from portal.payments import PROVIDERS
from portal.services import webhook_intake

bp = Blueprint("webhooks", __name__)


@bp.route("/webhooks/<provider>/<token>", methods=("GET", "POST"))
@csrf.exempt  # authenticated by the secret token in the URL and the provider's signature
def receive(provider: str, token: str):
    """Take a provider's notification (a bare GET is a provider checking that the URL answers)."""
    if provider not in PROVIDERS:
        return "", 404
    # The raw bytes first: signatures are computed over them, before any parsing.
    body = request.get_data(cache=True)
    form = request.form if request.mimetype == "application/x-www-form-urlencoded" else None
    status = webhook_intake.receive(provider, token, method=request.method, body=body,
                                        headers=request.headers, form=form)
    return "", status
