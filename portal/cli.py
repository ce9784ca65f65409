"""`flask --app portal ...` commands: owner, ticket, demo."""

import json
import secrets
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select
from werkzeug.serving import run_simple

from portal.extensions import db
from portal.models import Owner, PaymentAccount, Plan, Router
from portal.routeros.client import RouterError
from portal.services import owners, provisioning
from portal.services import routers as router_service

owner_cli = AppGroup("owner", help="Owner accounts.")
ticket_cli = AppGroup("ticket", help="Tickets.")


@owner_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
def create_owner(email: str, name: str) -> None:
    """Create an owner account; the password is prompted for, or read from standard input."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        owner = owners.create_owner(email, password, name)
    except owners.OwnerError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"Owner {owner.email} created.")


@ticket_cli.command("sell")
@click.option("--router", "router_name", required=True, help="Router name.")
@click.option("--plan", "plan_label", required=True, help="Plan name.")
@click.option("--owner", "owner_email", default=None, help="Owner email, when several owners name a router alike.")
def sell_ticket(router_name: str, plan_label: str, owner_email: str | None) -> None:
    """Sell a ticket by hand: create it on the router now and print its username and password."""
    query = select(Router).where(Router.name == router_name)
    if owner_email:
        query = query.join(Owner).where(Owner.email == owner_email.strip().lower())
    routers = db.session.scalars(query).all()
    if len(routers) != 1:
        raise click.ClickException(
            f"No router named {router_name!r}." if not routers
            else f"Several owners have a router named {router_name!r}: pass --owner."
        )
    plan = db.session.scalar(select(Plan).where(Plan.router_id == routers[0].id, Plan.label == plan_label))
    if plan is None:
        raise click.ClickException(f"Router {router_name!r} has no plan {plan_label!r}.")
    try:
        ticket = provisioning.sell_by_hand(routers[0], plan)
    except RouterError as exc:
        raise click.ClickException(f"The router did not take the ticket: {exc}")
    click.echo(f"Username: {ticket.username}")
    click.echo(f"Password: {ticket.password}")


DEMO_EMAIL = "demo@kiosque.local"
DEMO_PASSWORD = "kiosque-demo"
DEMO_PLANS = (("1 heure", "1h", 200, "1h"), ("1 jour", "1d", 500, "1d"), ("1 semaine", "1w", 2000, "1w"))
# Sandbox accounts: the provider look-alikes accept exactly these keys.
DEMO_ACCOUNTS = {
    "fedapay": {"secret_key": "sk_sandbox_demo", "webhook_secret": "wh_sandbox_demo", "public_key": "pk_sandbox_demo"},
    "cinetpay": {"apikey": "demo-apikey", "site_id": "100200", "secret_key": "demo-cinetpay-secret"},
    "feexpay": {"shop_id": "demoshop0000001", "token": "fp_demo_token"},
}
DEMO_NETWORKS = ["mtn", "moov", "celtiis_bj"]


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Run Kiosque with a sandbox router and sandbox providers, a demo owner, router, plans and accounts."""
    from portal import sandbox
    from portal.sandbox.routeros import SandboxRouter

    app = current_app._get_current_object()
    base = f"http://{host}:{port}"
    app.config["PUBLIC_URL"] = base
    if "kiosque.provider_sandbox" not in app.extensions:
        sandbox.mount(app)
    providers = app.extensions["kiosque.provider_sandbox"]
    providers.serve_at(base)
    sandbox.point_adapters_at(app, providers)
    router_server = SandboxRouter(password=secrets.token_urlsafe(12)).start()
    app.extensions["kiosque.sandbox_router"] = router_server
    router = seed_demo(router_server.host, router_server.port, router_server.password,
                       hotspot_url=f"{host}:{port}/sandbox/hotspot")
    for account in router.accounts:
        webhook = f"{base}/webhooks/{account.provider}/{account.webhook_token}"
        credentials = DEMO_ACCOUNTS[account.provider]
        if account.provider == "fedapay":
            providers.add_fedapay_account(**credentials, webhook_url=webhook)
        elif account.provider == "cinetpay":
            providers.add_cinetpay_account(**credentials)
        else:
            providers.add_feexpay_account(**credentials, webhook_url=webhook)
    click.echo(f"Sandbox router: {router_server.host}:{router_server.port} (router {router.name!r})")
    click.echo(f"Owner: {base}/owner/login  email: {DEMO_EMAIL}  password: {DEMO_PASSWORD}")
    click.echo(f"Buyer: {base}/sandbox/hotspot/  (the hotspot login page; FeexPay prompts: {base}/sandbox/feexpay/phone)")
    try:
        run_simple(host, port, app, threaded=True)
    finally:
        router_server.stop()


def seed_demo(router_host: str, router_port: int, router_password: str, *, hotspot_url: str) -> Router:
    """The demo owner, router, plans and accounts; the router record follows the sandbox's new port."""
    owner = owners.find_owner(DEMO_EMAIL) or owners.create_owner(DEMO_EMAIL, DEMO_PASSWORD, "Démo")
    router = db.session.scalar(select(Router).where(Router.owner_id == owner.id, Router.name == "Démo"))
    values = {
        "name": "Démo", "host": router_host, "port": router_port, "use_tls": False, "tls_verify": True,
        "api_username": "admin", "hotspot_server": "all", "dns_name": hotspot_url, "user_mode": "vc",
        "name_length": 6, "charset": "lower", "prefix": "", "currency": "XOF",
        "notify_email": DEMO_EMAIL,
    }
    router = router_service.save_router(owner, router, values, router_password)
    router_service.test_connection(router)
    existing = {p.label for p in router.plans}
    for position, (label, profile, price, time_limit) in enumerate(DEMO_PLANS):
        if label not in existing:
            db.session.add(Plan(router=router, label=label, profile=profile, price=price,
                                time_limit=time_limit, position=position))
    offered = {a.provider for a in router.accounts}
    for provider, credentials in DEMO_ACCOUNTS.items():
        if provider not in offered:
            account = PaymentAccount(
                owner=owner, provider=provider, label=f"{provider} (sandbox)", environment="sandbox",
                credentials=json.dumps(credentials), public_id=credentials.get("public_key") or
                credentials.get("site_id") or credentials.get("shop_id"),
                settings={"networks": DEMO_NETWORKS} if provider == "feexpay" else {},
            )
            db.session.add(account)
            router.accounts.append(account)
    db.session.commit()
    return router


def register(app: Flask) -> None:
    app.cli.add_command(owner_cli)
    app.cli.add_command(ticket_cli)
    app.cli.add_command(demo)
