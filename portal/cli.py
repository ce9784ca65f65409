"""`flask --app portal ...` commands: owner, config, ticket, keys, worker."""

import json
import signal
import sys
import threading

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from portal.extensions import db
from portal.models import Owner, Plan, Router
from portal.routeros.client import RouterError
from portal.services import keys, owners, provisioning, settings_file, worker as sweeps

owner_cli = AppGroup("owner", help="Owner accounts.")
ticket_cli = AppGroup("ticket", help="Tickets.")
keys_cli = AppGroup("keys", help="Encryption keys of the stored secrets.")
config_cli = AppGroup("config", help="An owner's settings as a file, to carry to another Kiosque server.")


@owner_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
def create_owner(email: str, name: str) -> None:
    """Create an owner account; the password is prompted for, or read from standard input."""
    try:
        owner = owners.create_owner(email, _read_password(), name)
    except owners.OwnerError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"Owner {owner.email} created.")


@owner_cli.command("set-password")
@click.argument("email")
def set_owner_password(email: str) -> None:
    """Give an owner a new password (prompted for, or read from standard input); signs them out everywhere."""
    owner = owners.find_owner(email)
    if owner is None:
        raise click.ClickException(f"No owner with the email {email.strip().lower()}.")
    try:
        owners.set_password(owner, _read_password())
    except owners.OwnerError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"Password of {owner.email} changed; every session of this owner has ended.")


def _read_password(prompt: str = "Password", *, confirm: bool = True) -> str:
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return sys.stdin.readline().rstrip("\n")


@config_cli.command("export")
@click.option("--owner", "owner_email", required=True, help="The owner whose settings to export.")
@click.option("--include-secrets", is_flag=True,
              help="Add passwords and keys, encrypted with a passphrase (prompted, or read from standard input).")
@click.option("--output", type=click.File("w"), default="-", help="Where to write the file (standard output).")
def export_config(owner_email: str, include_secrets: bool, output) -> None:
    """Write an owner's routers, plans, payment accounts and profile as JSON."""
    owner = owners.find_owner(owner_email)
    if owner is None:
        raise click.ClickException(f"No owner with the email {owner_email.strip().lower()}.")
    passphrase = None
    if include_secrets:
        passphrase = _read_password("Passphrase for the secrets")
        if len(passphrase) < 12:
            raise click.ClickException("The passphrase needs at least 12 characters.")
    json.dump(settings_file.export_settings(owner, passphrase), output, ensure_ascii=False, indent=2)
    output.write("\n")


@config_cli.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--owner", "owner_email", default=None,
              help="The owner to import into (the file's owner by default); made when it does not exist.")
@click.option("--dry-run", is_flag=True, help="Say what would change, change nothing.")
def import_config(file, owner_email: str | None, dry_run: bool) -> None:
    """Bring in a settings file: all of it or nothing. Asks for the passphrase when it holds secrets."""
    try:
        document = settings_file.read_document(file.read())
        entry = document["owner"] if isinstance(document.get("owner"), dict) else {}
        email = owner_email or str(entry.get("email", ""))
        owner = owners.find_owner(email) if email else None
        if owner is None and owner_email:
            document["owner"] = {**entry, "email": owner_email}
        passphrase = _read_password("Passphrase of the file", confirm=False) if "secrets" in document else None
        report = settings_file.import_settings(owner, document, secrets_passphrase=passphrase, dry_run=dry_run)
    except settings_file.SettingsFileError as exc:
        raise click.ClickException(str(exc))
    for line in report.changes + report.notes:
        click.echo(line)
    click.echo("Dry run: nothing was changed." if dry_run else f"{len(report.changes)} changes imported.")


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


@keys_cli.command("rotate")
def rotate_keys() -> None:
    """Re-encrypt every stored secret with the first key of PORTAL_ENCRYPTION_KEY."""
    click.echo(f"{keys.rotate()} secrets re-encrypted with the current key.")


@click.command("worker")
@click.option("--once", is_flag=True, help="One sweep, then exit.")
@click.option("--interval", type=float, default=None, help="Seconds between sweeps (PORTAL_WORKER_INTERVAL).")
def worker(once: bool, interval: float | None) -> None:
    """Catch up on what webhooks and buyers' pages missed: tickets, provider checks, emails, alerts."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    report = sweeps.run(interval or current_app.config["WORKER_INTERVAL"], stop, once=once)
    if once and report is not None:
        click.echo(f"provisioned={report.provisioned} polled={report.polled} expired={report.expired} "
                   f"emails={report.emails} alerts={len(report.alerts)}")


def register(app: Flask) -> None:
    app.cli.add_command(owner_cli)
    app.cli.add_command(config_cli)
    app.cli.add_command(ticket_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(worker)
