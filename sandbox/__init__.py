"""Stand-ins for the outside world: a RouterOS API server, the payment providers' APIs and hosted
pages, a hotspot login page, and the demo's mailbox. Kiosque itself never imports this package.

The demo (`flask --app sandbox demo`), the tests and the benchmarks use it: `mount(app)` serves
the provider look-alikes, the hotspot page and the mailbox page under /sandbox on a Kiosque app
and points its payment adapters at them.
"""

from flask import Flask

SANDBOX_PREFIX = "/sandbox"
# The look-alikes play other sites, whose pages carry their own inline scripts and styles.
SANDBOX_CSP = "default-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
# Sandbox routers listen on the loopback, on a random port: what the demo, the tests and the
# benchmarks let through Kiosque's egress policy for router connections. Never a production setting.
ROUTER_EGRESS = {"ROUTER_ALLOWED_NETWORKS": "127.0.0.0/8", "ROUTER_ALLOWED_PORTS": "8728,8729,1024-65535"}


def mount(app: Flask):
    """Serve the sandbox providers and hotspot page under /sandbox on this app (and the hotspot's
    router login at /login, as on the router's DNS name); returns the providers."""
    from sandbox import hotspot, mail
    from sandbox.providers import ProviderSandbox

    providers = ProviderSandbox(public_url=app.config["PUBLIC_URL"])
    app.extensions["kiosque.provider_sandbox"] = providers
    app.register_blueprint(providers.blueprint(), url_prefix=SANDBOX_PREFIX)
    app.register_blueprint(hotspot.bp, url_prefix=SANDBOX_PREFIX + "/hotspot")
    app.add_url_rule("/login", "sandbox_router_login", hotspot.router_login)
    app.register_blueprint(mail.bp, url_prefix=SANDBOX_PREFIX + "/mail")
    point_adapters_at(app, providers)
    return providers


def allow_inline(response):
    """The sandbox's own page policy (a blueprint hook runs before the app's, whose headers are defaults)."""
    response.headers["Content-Security-Policy"] = SANDBOX_CSP
    return response


def point_adapters_at(app: Flask, providers) -> None:
    """Send every payment adapter's calls to the sandbox providers."""
    app.config.update(providers.api_settings())


def create_app(test_config: dict | None = None) -> Flask:
    """Kiosque with the sandbox mounted and its commands: `flask --app sandbox demo` (a shop ready
    to sell) and `flask --app sandbox trial` (an empty Kiosque with stand-ins, for an operator's trial).

    Their router is a sandbox router on the loopback: the egress policy lets it through.
    """
    from portal import create_app as create_kiosque
    from sandbox import demo, trial

    app = create_kiosque({**ROUTER_EGRESS, **(test_config or {})})
    mount(app)
    app.cli.add_command(demo.demo_command)
    app.cli.add_command(trial.trial_command)
    return app
