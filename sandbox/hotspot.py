"""A page playing a MikroTik hotspot's login pages, so the buyer's whole path can be clicked through.

The sandbox router gives each visitor a client identity (MAC and IP, kept in a cookie) and knows
it as a hotspot host, as a real router knows every device on its LAN. The page links to Kiosque
with `mac`, `ip`, `dst` and `server` the way a login.html does, and `/login` takes the PAP GET
login a router takes; without credentials it is the login page, which reads them from the URL's
fragment as the generated login.html does (Kiosque's "Se connecter" when the router does not
allow http-pap). It needs the sandbox router the demo started (`kiosque.sandbox_router`).
"""

import secrets

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from portal.extensions import db
from portal.models import Router
from portal.routeros.client import RouterAddress, RouterClient, RouterError
from portal.services.routers import egress_policy
from sandbox import allow_inline

bp = Blueprint("hotspot", __name__, template_folder="templates")
bp.after_request(allow_inline)

COOKIE = "sandbox_hotspot_client"
WANTED_PAGE = "http://example.com/"
ADDRESSES = [f"10.5.50.{n}" for n in range(2, 252)]  # the hotspot's DHCP pool


def _sandbox_router():
    router = current_app.extensions.get("kiosque.sandbox_router")
    if router is None:
        abort(404)
    return router


def _client() -> tuple[str, str]:
    """This browser's MAC and IP on the sandbox hotspot; on the first visit a new MAC, and an
    address no other device has, as the router's DHCP server would lease (while the pool lasts)."""
    known = request.cookies.get(COOKIE, "")
    if known.count("|") == 1:
        mac, ip = known.split("|")
        return mac, ip
    mac = "02:" + ":".join(f"{b:02X}" for b in secrets.token_bytes(4)) + ":01"
    taken = _sandbox_router().host_addresses()
    return mac, secrets.choice([ip for ip in ADDRESSES if ip not in taken] or ADDRESSES)


def _page(template: str, **context):
    sandbox = _sandbox_router()
    mac, ip = _client()
    sandbox.add_host(ip, mac)
    online = any(s["address"] == ip for s in sandbox.active())
    routers = db.session.scalars(select(Router).where(Router.host == sandbox.host, Router.port == sandbox.port)).all()
    response = current_app.make_response(render_template(
        template, mac=mac, ip=ip, dst=WANTED_PAGE, routers=routers, online=online, **context))
    response.set_cookie(COOKIE, f"{mac}|{ip}", httponly=True, samesite="Lax")
    return response


@bp.get("/")
def login_page():
    """The hotspot's login page: buy a ticket with Kiosque, or type a code."""
    return _page("sandbox/hotspot.html")


@bp.get("/login")
def login():
    """The router's PAP login by GET (`username`, `password`, `dst`), as after a Kiosque purchase."""
    if "username" not in request.args:  # the login page, its credentials maybe in the fragment
        return _page("sandbox/hotspot.html")
    sandbox = _sandbox_router()
    mac, ip = _client()
    sandbox.add_host(ip, mac)
    address = RouterAddress(sandbox.host, sandbox.port, sandbox.username, sandbox.password, policy=egress_policy())
    error = None
    try:
        client = RouterClient(address)
        try:
            client.active_login(user=request.args.get("username", ""), password=request.args.get("password", ""),
                                ip=ip, mac=mac)
        finally:
            client.close()
    except RouterError as exc:
        error = getattr(exc, "router_message", "") or str(exc)
    return _page("sandbox/hotspot.html", error=error)


def router_login():
    """`/login` on the demo's own host, which is the demo router's hotspot DNS name: the login above."""
    return redirect(url_for("hotspot.login", **request.args))
