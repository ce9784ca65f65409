"""Local stand-ins for the outside world (router, providers, hotspot page); never active in production.

`mount(app)` plugs the provider look-alikes and the hotspot page into an app started with
`PORTAL_SANDBOX` set, and points the payment adapters at them.
"""

from flask import Flask

SANDBOX_PREFIX = "/sandbox"


def mount(app: Flask) -> None:
    """Serve the sandbox providers and hotspot page under /sandbox on this app."""
    from portal.sandbox import hotspot
    from portal.sandbox.providers import ProviderSandbox

    providers = ProviderSandbox(public_url=app.config["PUBLIC_URL"])
    app.extensions["kiosque.provider_sandbox"] = providers
    app.register_blueprint(providers.blueprint(), url_prefix=SANDBOX_PREFIX)
    app.register_blueprint(hotspot.bp, url_prefix=SANDBOX_PREFIX + "/hotspot")
    point_adapters_at(app, providers)


def point_adapters_at(app: Flask, providers) -> None:
    """Send every payment adapter's calls to the sandbox providers."""
    app.config.update(
        FEDAPAY_API_URL=providers.api_url("fedapay", "live"),
        FEDAPAY_SANDBOX_API_URL=providers.api_url("fedapay", "sandbox"),
        CINETPAY_API_URL=providers.api_url("cinetpay"),
        FEEXPAY_API_URL=providers.api_url("feexpay"),
    )
