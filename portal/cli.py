"""`flask --app portal ...` commands: owner, ticket, demo."""

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select
from werkzeug.serving import run_simple

from portal.extensions import db
from portal.models import Owner, Plan, Router
from portal.routeros.client import RouterError
from portal.services import owners, provisioning

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


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Run Kiosque with a sandbox router and sandbox providers, a demo owner, router, plans and accounts."""
    from portal.sandbox import demo as sandbox_demo

    base = f"http://{host}:{port}"
    stage = sandbox_demo.stage(current_app._get_current_object(), base)
    click.echo(f"Sandbox router: {stage.router_server.host}:{stage.router_server.port} (router {stage.router.name!r})")
    click.echo(f"Owner: {base}/owner/login  email: {sandbox_demo.EMAIL}  password: {sandbox_demo.PASSWORD}")
    click.echo(f"Buyer: {base}/sandbox/hotspot/  (the hotspot login page; FeexPay prompts: {base}/sandbox/feexpay/phone)")
    try:
        run_simple(host, port, current_app._get_current_object(), threaded=True)
    finally:
        stage.router_server.stop()


def register(app: Flask) -> None:
    app.cli.add_command(owner_cli)
    app.cli.add_command(ticket_cli)
    app.cli.add_command(demo)
