"""Request and response hygiene: strict browser headers (no foreign scripts, no framing, no
sniffing) and no NUL characters in what requests carry."""

from flask import Flask, abort, request
from werkzeug.middleware.proxy_fix import ProxyFix

# Pages load only their own scripts and styles (htmx and one stylesheet): no inline script at
# all, so no nonce is needed, and htmx is configured to need no eval and no injected style.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])
HSTS = "max-age=31536000; includeSubDomains"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def register(app: Flask) -> None:
    if app.config["TRUSTED_PROXIES"]:
        # Behind nginx: trust its X-Forwarded-For/-Proto so rate limits and HSTS see the client.
        count = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)

    @app.before_request
    def refuse_nul_characters():
        """No text Kiosque stores or looks up may hold NUL: PostgreSQL refuses it outright.

        Provider callbacks are kept as they arrived first: their intake refuses what it cannot read.
        """
        values = [request.path, *request.args.keys(), *request.args.values()]
        if request.mimetype in FORM_TYPES and request.blueprint != "webhooks":
            request.get_data(cache=True)  # keep the raw body for signatures; the form parses from it
            values += [*request.form.keys(), *request.form.values()]
        if any("\x00" in value for value in values):
            abort(400)

    @app.after_request
    def secure_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
