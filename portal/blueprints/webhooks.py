"""Provider callbacks: the raw request in, one service call, a status code out."""

from flask import Blueprint, request

from portal.extensions import csrf
from portal.payments import PROVIDERS
from portal.services import webhook_intake

bp = Blueprint("webhooks", __name__)

# Form encodings a provider may post: a notification sent as "form values" may be either.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@bp.route("/webhooks/<provider>/<token>", methods=("GET", "POST"))
@csrf.exempt  # authenticated by the secret token in the URL and the provider's signature
def receive(provider: str, token: str):
    """Take a provider's notification (a bare GET is a provider checking that the URL answers)."""
    if provider not in PROVIDERS:
        return "", 404
    # The raw bytes first: signatures are computed over them, before any parsing.
    body = request.get_data(cache=True)
    form = request.form if request.mimetype in FORM_TYPES else None
    status = webhook_intake.receive(provider, token, method=request.method, body=body,
                                        headers=request.headers, form=form)
    return "", status
