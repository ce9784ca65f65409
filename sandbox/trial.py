"""An operator's trial of Kiosque without money: `flask --app sandbox trial`.

Unlike the demo, nothing is made for the owner: Kiosque starts empty (owners come from
`flask --app portal owner create`), with stand-ins for what a trial cannot have:

- the providers: the sandbox look-alikes, served by Kiosque itself under /sandbox. They accept
  the trial keys below, which the accounts page lists; no money moves. They send no webhooks
  (their dashboards would hold the URLs): Kiosque confirms trial payments by asking their API,
  as it does for a real account whose webhook is not declared yet;
- the router: a sandbox RouterOS API on a fixed port, which the owner adds on the router form
  like a real one (address, port, user `admin` and the printed password);
- the hotspot: the sandbox hotspot page (/sandbox/hotspot/) plays the phone on the router's
  Wi-Fi, and /login plays the router's own login address, which the router reports as its
  hotspot DNS name.

The worker runs beside the web server. Never on a production server: the stand-ins take
payments that are not real.
"""

import secrets
import threading

import click
from flask import Flask, current_app
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from portal.services import worker
from sandbox import hotspot, mount
from sandbox.routeros import SandboxRouter

# The keys the stand-in providers accept in a trial. No public id (FedaPay's public key) where it
# is optional: one trial server may have several owners, and a public id belongs to one owner.
TRIAL_KEYS = {
    "fedapay": {"secret_key": "sk_sandbox_trial", "webhook_secret": "wh_sandbox_trial", "public_key": ""},
    "cinetpay": {"apikey": "trial-apikey", "site_id": "900100", "secret_key": "trial-cinetpay-secret"},
    "feexpay": {"shop_id": "trialshop000001", "token": "fp_trial_token"},
}
TRIAL_ENVIRONMENTS = {"fedapay": "sandbox"}  # FedaPay's test host: keys starting sk_sandbox_


def prepare(app: Flask, base_url: str, router_port: int, router_password: str) -> SandboxRouter:
    """Serve the stand-ins at `base_url`, give the accounts page the trial keys, start the router."""
    app.config["PUBLIC_URL"] = base_url
    providers = app.extensions.get("kiosque.provider_sandbox") or mount(app)
    providers.serve_at(base_url)
    app.config.update(providers.api_settings())
    for provider, keys in TRIAL_KEYS.items():
        providers.add_account(provider, keys, webhook_url=None)
    app.extensions["kiosque.trial_accounts"] = {
        provider: {**{k: v for k, v in keys.items() if v}, **({"environment": TRIAL_ENVIRONMENTS[provider]}
                                                              if provider in TRIAL_ENVIRONMENTS else {})}
        for provider, keys in TRIAL_KEYS.items()}
    router = SandboxRouter(port=router_port, password=router_password,
                           dns_name=base_url.split("://", 1)[1]).start()
    app.extensions["kiosque.sandbox_router"] = router
    app.add_url_rule("/login", "trial_router_login", hotspot.login)
    return router


@click.command("trial")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--router-port", default=8728, show_default=True, type=int, help="The sandbox router's API port.")
def trial_command(host: str, port: int, router_port: int) -> None:
    """Try Kiosque for real without money: stand-in providers, router and hotspot; nothing seeded."""
    app = current_app._get_current_object()
    upgrade()
    base = f"http://{host}:{port}"
    password = secrets.token_urlsafe(9)
    router = prepare(app, base, router_port, password)
    click.echo("Trial: the payment providers, the router and the hotspot are stand-ins; no money moves.")
    click.echo(f"Owners sign in at {base}/owner/login (create one: flask --app portal owner create EMAIL).")
    click.echo(f"Router to add: address {router.host}, API port {router.port}, user {router.username}, "
               f"password {password}")
    click.echo("Payment keys: listed on the owner's Paiements page.")
    click.echo(f"Buyer's phone on the hotspot: {base}/sandbox/hotspot/  (FeexPay prompts: {base}/sandbox/feexpay/phone)")
    threading.Thread(target=_worker, args=(app,), daemon=True).start()
    try:
        run_simple(host, port, app, threaded=True)
    finally:
        router.stop()


def _worker(app: Flask) -> None:
    with app.app_context():
        worker.run(app.config["WORKER_INTERVAL"], threading.Event())
