"""`flask --app portal ...` commands: owner, config, ticket, keys, worker, vpn."""

import json
import signal
import sys
import threading
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from portal.extensions import db
from portal.models import Owner, Plan, Router
from portal.routeros.client import RouterError
from portal.services import keys, owners, provisioning, settings_file, tunnel
from portal.services import worker as sweeps
from portal.wireguard import STALE_AFTER, HubSettings, Runner, WireGuardError, status

owner_cli = AppGroup("owner", help="Owner accounts.")
ticket_cli = AppGroup("ticket", help="Tickets.")
keys_cli = AppGroup("keys", help="Encryption keys of the stored secrets.")
config_cli = AppGroup("config", help="An owner's settings as a file, to carry to another Kiosque server.")
vpn_cli = AppGroup("vpn", help="The WireGuard hub routers behind carrier NAT dial into (run as root).")


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


def _hub() -> HubSettings:
    settings = tunnel.hub()
    if settings is None:
        raise click.ClickException(
            "The WireGuard hub is off. Turn it on with PORTAL_VPN_ENDPOINT (the public host:port routers dial, "
            "e.g. hub.example.com:51820) and PORTAL_VPN_NETWORK (a tunnel network no router's LAN uses, e.g. "
            "10.77.0.0/24): docs/deployment.md, section \"WireGuard hub\".")
    return settings


def _left_out(outside: list[int]) -> None:
    if outside:
        click.echo(f"warning: routers {', '.join(map(str, outside))} have an address outside "
                   f"{tunnel.hub().network}: left out until their owners run a new script")


@vpn_cli.command("sync")
def vpn_sync() -> None:
    """Make the hub's interface match the tunnelled routers once (add, change, remove peers)."""
    settings = _hub()
    try:
        report, outside = tunnel.sync_hub(settings, Runner())
    except WireGuardError as exc:
        raise click.ClickException(str(exc))
    click.echo(report.summary())
    _left_out(outside)


@vpn_cli.command("status")
def vpn_status() -> None:
    """The interface and each tunnelled router's last handshake (recorded for the owners' pages)."""
    settings = _hub()
    try:
        hub = status(Runner(), settings.interface)
    except WireGuardError as exc:
        raise click.ClickException(str(exc))
    if not hub.exists:
        raise click.ClickException(f"{settings.interface} does not exist: run `vpn sync`, or start the hub service")
    tunnel.record(hub.peers)
    expected = tunnel.hub_keys().public
    click.echo(f"{hub.interface} ({hub.kind}): {'up' if hub.up else 'DOWN'}, {', '.join(hub.addresses) or 'no address'}, "
               f"listening on {hub.listen_port}, public key {hub.public_key}")
    now = datetime.now(UTC)
    lines, unknown = tunnel.match_peers(hub)
    for line in lines:
        click.echo(f"  router {line.router_id} {line.name!r} ({line.owner_email}) {line.address or '-'}: "
                   + _describe_peer(line.peer, now))
    warnings = []
    if hub.public_key != expected:
        warnings.append("the interface's key is not the hub's key in the database: run `vpn sync`")
    if hub.listen_port != settings.listen_port:
        warnings.append(f"listening on {hub.listen_port}, not {settings.listen_port}: run `vpn sync`")
    if hub.forwarding:
        warnings.append(f"forwarding is on for {hub.interface}: routers could reach each other; `vpn sync` "
                        "turns it off, a FORWARD drop rule keeps it off (docs/deployment.md)")
    if unknown:
        warnings.append(f"{len(unknown)} peer(s) belong to no tunnelled router: `vpn sync` removes them")
    missing = [line.router_id for line in lines if line.peer is None]
    if missing:
        warnings.append(f"routers {', '.join(map(str, missing))} are not on the interface: run `vpn sync`")
    for warning in warnings:
        click.echo(f"warning: {warning}")


def _describe_peer(peer, now: datetime) -> str:
    if peer is None:
        return "not on the interface"
    age = peer.handshake_age(now)
    seen = "no handshake" if age is None else f"handshake {age:.0f} s ago from {peer.endpoint}"
    state = "TUNNEL DOWN" if peer.is_stale(now, STALE_AFTER) else "up"
    return f"{seen}, received {peer.rx_bytes} B, sent {peer.tx_bytes} B: {state}"


@vpn_cli.command("watch")
@click.option("--interval", type=float, default=0.5, show_default=True, help="Seconds between two looks at the database.")
def vpn_watch(interval: float) -> None:
    """Keep the interface in step with the database (a new router within a second), and record each
    router's handshake, endpoint and counters every few seconds. The hub's privileged service."""
    settings = _hub()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"watching {settings.interface} for the tunnelled routers (endpoint {settings.endpoint}, "
               f"network {settings.network})")
    tunnel.watch_hub(settings, Runner(), stop, interval=interval)


def register(app: Flask) -> None:
    app.cli.add_command(owner_cli)
    app.cli.add_command(config_cli)
    app.cli.add_command(ticket_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(vpn_cli)
    app.cli.add_command(worker)
