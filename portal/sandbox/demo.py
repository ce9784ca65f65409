"""The demo: Kiosque wired to a sandbox router and the sandbox providers, with an owner ready to sell.

`make run` serves it; the benchmarks stage it the same way.
"""

import json
import secrets
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import select

from portal import sandbox
from portal.extensions import db
from portal.models import PaymentAccount, Plan, Router
from portal.sandbox.routeros import SandboxRouter
from portal.services import owners
from portal.services import routers as router_service

EMAIL = "demo@kiosque.local"
PASSWORD = "kiosque-demo"
PLANS = (("1 heure", "1h", 200, "1h"), ("1 jour", "1d", 500, "1d"), ("1 semaine", "1w", 2000, "1w"))
# Sandbox accounts: the provider look-alikes accept exactly these keys.
ACCOUNTS = {
    "fedapay": {"secret_key": "sk_sandbox_demo", "webhook_secret": "wh_sandbox_demo", "public_key": "pk_sandbox_demo"},
    "cinetpay": {"apikey": "demo-apikey", "site_id": "100200", "secret_key": "demo-cinetpay-secret"},
    "feexpay": {"shop_id": "demoshop0000001", "token": "fp_demo_token"},
}
NETWORKS = ["mtn", "moov", "celtiis_bj"]


@dataclass
class Stage:
    router_server: SandboxRouter
    router: Router


def stage(app: Flask, base_url: str) -> Stage:
    """Start a sandbox router, point the app at itself and its sandbox providers, seed the demo owner.

    Needs an application context; `base_url` is where the app is (about to be) served.
    """
    app.config["PUBLIC_URL"] = base_url
    if "kiosque.provider_sandbox" not in app.extensions:
        sandbox.mount(app)
    providers = app.extensions["kiosque.provider_sandbox"]
    providers.serve_at(base_url)
    sandbox.point_adapters_at(app, providers)
    router_server = SandboxRouter(password=secrets.token_urlsafe(12)).start()
    app.extensions["kiosque.sandbox_router"] = router_server
    router = seed(router_server.host, router_server.port, router_server.password,
                  hotspot_url=base_url.split("://", 1)[1] + "/sandbox/hotspot")
    for account in router.accounts:
        webhook = f"{base_url}/webhooks/{account.provider}/{account.webhook_token}"
        credentials = ACCOUNTS[account.provider]
        if account.provider == "fedapay":
            providers.add_fedapay_account(**credentials, webhook_url=webhook)
        elif account.provider == "cinetpay":
            providers.add_cinetpay_account(**credentials)
        else:
            providers.add_feexpay_account(**credentials, webhook_url=webhook)
    return Stage(router_server, router)


def seed(router_host: str, router_port: int, router_password: str, *, hotspot_url: str) -> Router:
    """The demo owner, router, plans and accounts; the router record follows the sandbox's new port."""
    owner = owners.find_owner(EMAIL) or owners.create_owner(EMAIL, PASSWORD, "Démo")
    router = db.session.scalar(select(Router).where(Router.owner_id == owner.id, Router.name == "Démo"))
    values = {
        "name": "Démo", "host": router_host, "port": router_port, "use_tls": False, "tls_verify": True,
        "api_username": "admin", "hotspot_server": "all", "dns_name": hotspot_url, "user_mode": "vc",
        "name_length": 6, "charset": "lower", "prefix": "", "currency": "XOF", "notify_email": EMAIL,
    }
    router = router_service.save_router(owner, router, values, router_password)
    router_service.test_connection(router)
    existing = {p.label for p in router.plans}
    for position, (label, profile, price, time_limit) in enumerate(PLANS):
        if label not in existing:
            db.session.add(Plan(router=router, label=label, profile=profile, price=price,
                                time_limit=time_limit, position=position))
    offered = {a.provider for a in router.accounts}
    for provider, credentials in ACCOUNTS.items():
        if provider not in offered:
            account = PaymentAccount(
                owner=owner, provider=provider, label=f"{provider} (sandbox)", environment="sandbox",
                credentials=json.dumps(credentials),
                public_id=credentials.get("public_key") or credentials.get("site_id") or credentials["shop_id"],
                settings={"networks": NETWORKS} if provider == "feexpay" else {},
            )
            db.session.add(account)
            router.accounts.append(account)
    db.session.commit()
    return router
