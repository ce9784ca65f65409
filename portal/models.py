"""The data model, SQLAlchemy 2.0 typed style: owners, their routers, plans and payment accounts,
orders with their timeline, tickets, and provider callbacks as they arrived."""

import json
import secrets
from datetime import date, datetime, timezone
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from portal.columns import text_enum
from portal.crypto import EncryptedText
from portal.extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def public_token(nbytes: int = 12) -> str:
    """An unguessable URL-safe identifier for public links."""
    return secrets.token_urlsafe(nbytes)


class SaleEmail(StrEnum):
    """How an owner hears of online sales."""

    EACH = "each"  # one email per sale, sent at the worker's next sweep
    DAILY = "daily"  # one summary a day, of the day before (notifications.send_daily_summaries)


class Owner(UserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(120), default="")
    locale: Mapped[str] = mapped_column(String(5), default="fr")
    # Part of every session's identity: raising it ends them all (sign-out, new password).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    sale_email: Mapped[SaleEmail] = mapped_column(text_enum(SaleEmail, 5), default=SaleEmail.EACH,
                                                  server_default=SaleEmail.EACH.value)
    # The last local day whose summary was claimed: a worker sends a day's summary once.
    summary_day: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    routers: Mapped[list["Router"]] = relationship(back_populates="owner", order_by="Router.name")
    accounts: Mapped[list["PaymentAccount"]] = relationship(back_populates="owner",
                                                            order_by="(PaymentAccount.provider, PaymentAccount.id)")

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """What the session remembers: the id and the session version (see portal.services.owners)."""
        return f"{self.id}.{self.session_version}"


# Which of its owner's payment accounts a router offers to buyers.
router_account = Table(
    "router_account",
    db.metadata,
    Column("router_id", ForeignKey("router.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", ForeignKey("payment_account.id", ondelete="CASCADE"), primary_key=True),
)


class UserMode(StrEnum):
    VOUCHER = "vc"  # username = password
    USER_PASSWORD = "up"


class RouterConnection(StrEnum):
    """How Kiosque reaches a router's API."""

    DIRECT = "direct"  # at the address and port the owner typed (api or api-ssl)
    TUNNEL = "tunnel"  # through Kiosque's WireGuard hub, at the tunnel address Kiosque gave it


class Router(db.Model):
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owner.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    slug: Mapped[str] = mapped_column(String(32), unique=True, default=public_token)
    connection: Mapped[RouterConnection] = mapped_column(text_enum(RouterConnection, 6),
                                                         default=RouterConnection.DIRECT, server_default="direct")
    host: Mapped[str] = mapped_column(String(253))  # the direct address; unused (may be blank) through the tunnel
    port: Mapped[int] = mapped_column(default=8728)
    use_tls: Mapped[bool] = mapped_column(default=False)
    tls_verify: Mapped[bool] = mapped_column(default=True)
    api_username: Mapped[str] = mapped_column(String(80))
    api_password: Mapped[str] = mapped_column(EncryptedText)
    hotspot_server: Mapped[str] = mapped_column(String(80), default="all")
    dns_name: Mapped[str] = mapped_column(String(253), default="")
    user_mode: Mapped[UserMode] = mapped_column(text_enum(UserMode, 2), default=UserMode.VOUCHER)
    name_length: Mapped[int] = mapped_column(default=6)
    charset: Mapped[str] = mapped_column(String(10), default="lower")
    prefix: Mapped[str] = mapped_column(String(6), default="")
    currency: Mapped[str] = mapped_column(String(3), default="XOF")
    # Where the hotspot is (ISO 3166 alpha-2, lower case): the wallets buyers are offered, phone examples.
    country: Mapped[str] = mapped_column(String(2), default="bj", server_default="bj")
    notify_email: Mapped[str] = mapped_column(String(254), default="")
    # What the router said at the last successful contact.
    identity: Mapped[str] = mapped_column(String(120), default="")
    ros_version: Mapped[str] = mapped_column(String(60), default="")
    login_by: Mapped[str] = mapped_column(String(120), default="")
    facts: Mapped[dict] = mapped_column(JSON, default=dict)
    last_contact_at: Mapped[datetime | None]
    # Set when the router stops answering; cleared when it answers again (services/router_health).
    down_since: Mapped[datetime | None]
    down_alerted: Mapped[bool] = mapped_column(default=False)
    failures: Mapped[int] = mapped_column(default=0)  # failed contacts in a row
    retry_at: Mapped[datetime | None]  # until then, Kiosque leaves the router alone
    # Kiosque's WireGuard tunnel (services/tunnel.py). The address and key pair are given once and
    # kept while the router exists, also when it goes back to a direct connection: its script
    # still holds them, and no other router may ever answer at that address.
    tunnel_address: Mapped[str | None] = mapped_column(String(15), unique=True)
    tunnel_private_key: Mapped[str | None] = mapped_column(EncryptedText)
    tunnel_public_key: Mapped[str | None] = mapped_column(String(44), unique=True)
    # What the hub last reported of this router's peer (`flask vpn watch`, `vpn status`).
    tunnel_handshake_at: Mapped[datetime | None]
    tunnel_endpoint: Mapped[str | None] = mapped_column(String(64))
    tunnel_rx_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tunnel_tx_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tunnel_seen_at: Mapped[datetime | None]  # when the hub last reported it
    # The one-time link the last kit script fetches the hotspot pages with (services/hotspot_pages.py):
    # only its hash is kept, and it is dead after its expiry or once the pages are in place.
    pages_link_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    pages_link_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[Owner] = relationship(back_populates="routers")
    plans: Mapped[list["Plan"]] = relationship(
        back_populates="router", cascade="all, delete-orphan", order_by="(Plan.position, Plan.price)"
    )
    tickets: Mapped[list["Ticket"]] = relationship(back_populates="router", cascade="all, delete-orphan")
    accounts: Mapped[list["PaymentAccount"]] = relationship(secondary=router_account, back_populates="routers",
                                                            order_by="PaymentAccount.provider")

    @property
    def offered_accounts(self) -> list["PaymentAccount"]:
        return [a for a in self.accounts if a.active]

    @property
    def takes_pap(self) -> bool:
        """Whether the hotspot takes a password in clear (http-pap), as far as the last test could tell."""
        return not self.login_by or "http-pap" in self.login_by.split(",")

    @property
    def profile_names(self) -> list[str]:
        return [p["name"] for p in self.facts.get("user_profiles", [])]

    @property
    def tunnelled(self) -> bool:
        return self.connection == RouterConnection.TUNNEL

    @property
    def api_host(self) -> str:
        """The address Kiosque connects to: the tunnel address through the tunnel, else the one typed."""
        return (self.tunnel_address or "") if self.tunnelled else self.host


class TunnelHub(db.Model):
    """The WireGuard hub's key pair, made once: every tunnelled router's script holds its public key."""

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1: there is one hub
    private_key: Mapped[str] = mapped_column(EncryptedText)
    public_key: Mapped[str] = mapped_column(String(44))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Plan(db.Model):
    __table_args__ = (UniqueConstraint("router_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    router_id: Mapped[int] = mapped_column(ForeignKey("router.id"), index=True)
    label: Mapped[str] = mapped_column(String(60))
    profile: Mapped[str] = mapped_column(String(80))
    price: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="XOF")
    time_limit: Mapped[str] = mapped_column(String(20), default="")  # MikroTik duration, "" = none
    data_limit_bytes: Mapped[int] = mapped_column(default=0)  # 0 = none
    validity: Mapped[str] = mapped_column(String(20), default="")  # from the Mikhmon profile, shown only
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)

    router: Mapped[Router] = relationship(back_populates="plans")


class TicketStatus(StrEnum):
    PENDING = "pending"  # credentials chosen and saved, not yet confirmed on the router
    CREATED = "created"  # the hotspot user exists on the router


class Ticket(db.Model):
    """A hotspot user made by Kiosque. Saved before the router call so a retry reuses the same name."""

    __table_args__ = (UniqueConstraint("router_id", "username"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    router_id: Mapped[int] = mapped_column(ForeignKey("router.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id", ondelete="SET NULL"), unique=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan.id", ondelete="SET NULL"))
    plan_label: Mapped[str] = mapped_column(String(60))
    price: Mapped[int]
    username: Mapped[str] = mapped_column(String(64))
    password: Mapped[str] = mapped_column(EncryptedText)
    profile: Mapped[str] = mapped_column(String(80))
    server: Mapped[str] = mapped_column(String(80))
    limit_uptime: Mapped[str] = mapped_column(String(20), default="")
    limit_bytes_total: Mapped[int] = mapped_column(default=0)
    comment: Mapped[str] = mapped_column(String(80))
    status: Mapped[TicketStatus] = mapped_column(text_enum(TicketStatus, 10), default=TicketStatus.PENDING, index=True)
    sold_by_hand: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    router_user_id: Mapped[str] = mapped_column(String(20), default="")
    created_on_router_at: Mapped[datetime | None]
    client_ip: Mapped[str] = mapped_column(String(45), default="")
    client_mac: Mapped[str] = mapped_column(String(17), default="")
    login_result: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    router: Mapped[Router] = relationship(back_populates="tickets")
    order: Mapped["Order | None"] = relationship(back_populates="ticket")


class PaymentAccount(db.Model):
    """An owner's account with one payment provider; the credentials are stored encrypted."""

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owner.id"), index=True)
    provider: Mapped[str] = mapped_column(String(10))
    label: Mapped[str] = mapped_column(String(80))
    environment: Mapped[str] = mapped_column(String(7), default="live")  # one of its adapter's api_urls
    credentials: Mapped[str] = mapped_column(EncryptedText)  # JSON object of the provider's fields
    # The non-secret credential the guide's buy links carry (the adapter's public_id_field), so
    # those links can find the account without decrypting every one.
    public_id: Mapped[str] = mapped_column(String(120), default="", index=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)  # e.g. the networks a push provider charges
    webhook_token: Mapped[str] = mapped_column(String(48), unique=True, default=lambda: public_token(24))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[Owner] = relationship(back_populates="accounts")
    routers: Mapped[list[Router]] = relationship(secondary=router_account, back_populates="accounts")

    @property
    def secrets(self) -> dict[str, str]:
        return json.loads(self.credentials)


class OrderStatus(StrEnum):
    CREATED = "created"  # saved, checkout not started yet
    PENDING = "pending"  # the buyer is paying
    UNKNOWN = "unknown"  # the checkout's answer was lost: the buyer's phone may be asked to pay all the same
    PAID = "paid"  # the provider confirmed the money; the ticket is being made
    PROVISIONED = "provisioned"  # the ticket is on the router
    FAILED = "failed"  # declined, cancelled, or the checkout could not start
    EXPIRED = "expired"  # no payment came in time


class FailureReason(StrEnum):
    """Why an order failed, where the buyer is told something they can act on."""

    INSUFFICIENT_FUNDS = "insufficient funds"  # the provider said the wallet's balance was too low
    CANCELLED_BY_BUYER = "cancelled by buyer"


ORDER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no look-alikes: buyers may type it


def order_code() -> str:
    return "".join(secrets.choice(ORDER_CODE_ALPHABET) for _ in range(10))


class Order(db.Model):
    """A buyer's purchase of a plan. Amount and terms are copied from the plan when it is made."""

    __table_args__ = (
        UniqueConstraint("account_id", "provider_ref"),
        # The worker's queue of sale emails to send: a few rows among every sale ever made.
        Index("ix_order_email_due", "email_attempts", "id",
              postgresql_where=text("status = 'provisioned' AND email_sent_at IS NULL"),
              sqlite_where=text("status = 'provisioned' AND email_sent_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True, default=order_code)
    # One buy form, one order: a second submit of the same form finds the first order.
    intent: Mapped[str] = mapped_column(String(48), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owner.id"), index=True)
    router_id: Mapped[int] = mapped_column(ForeignKey("router.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan.id", ondelete="SET NULL"))
    account_id: Mapped[int] = mapped_column(ForeignKey("payment_account.id"), index=True)
    provider: Mapped[str] = mapped_column(String(10))
    plan_label: Mapped[str] = mapped_column(String(60))
    profile: Mapped[str] = mapped_column(String(80))
    time_limit: Mapped[str] = mapped_column(String(20), default="")
    data_limit_bytes: Mapped[int] = mapped_column(default=0)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[OrderStatus] = mapped_column(text_enum(OrderStatus, 12), default=OrderStatus.CREATED, index=True)
    provider_ref: Mapped[str | None] = mapped_column(String(120))
    checkout_url: Mapped[str] = mapped_column(Text, default="")
    payer_reference: Mapped[str] = mapped_column(String(120), default="", index=True)
    payer_phone: Mapped[str] = mapped_column(String(20), default="")
    network: Mapped[str] = mapped_column(String(20), default="")
    client_mac: Mapped[str] = mapped_column(String(17), default="")
    client_ip: Mapped[str] = mapped_column(String(45), default="")
    link_orig: Mapped[str] = mapped_column(String(500), default="")
    hotspot_server: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]
    provisioned_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]
    # No longer written nor read: the status check that follows every callback sets
    # last_checked_at, which holds the polling off as this did. A later schema revision drops it,
    # once no release that reads it can still be running (a worker on the previous code reads it
    # between `db upgrade` and its restart).
    notified_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    # Who is making the ticket, and until when others must leave it alone: every write of a
    # claimed provisioning is conditional on this token, so a claim that lapsed cannot act twice.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(300), default="")
    failure_reason: Mapped[FailureReason | None] = mapped_column(text_enum(FailureReason, 20))
    email_sent_at: Mapped[datetime | None]
    email_attempts: Mapped[int] = mapped_column(default=0)
    # When the last attempt was claimed: another worker leaves the order alone until it has surely ended.
    email_attempted_at: Mapped[datetime | None]
    stuck_alerted_at: Mapped[datetime | None]  # the owner was told this paid order has no ticket yet

    router: Mapped[Router] = relationship()
    plan: Mapped[Plan | None] = relationship()
    account: Mapped[PaymentAccount] = relationship()
    ticket: Mapped["Ticket | None"] = relationship(back_populates="order")
    events: Mapped[list["OrderEvent"]] = relationship(back_populates="order", order_by="OrderEvent.id",
                                                      cascade="all, delete-orphan")

    @property
    def is_final(self) -> bool:
        return self.status in (OrderStatus.PROVISIONED, OrderStatus.FAILED, OrderStatus.EXPIRED)


class EventKind(StrEnum):
    """What a line of an order's timeline says happened."""

    CREATED = "created"
    CHECKOUT_STARTED = "checkout started"
    CHECKOUT_FAILED = "checkout failed"
    CHECKOUT_UNANSWERED = "checkout unanswered"
    NOTIFIED = "notified"
    STATUS_CHECK_FAILED = "status check failed"
    PAID = "paid"
    AMOUNT_MISMATCH = "amount mismatch"
    FAILED = "failed"
    EXPIRED = "expired"
    ROUTER_ERROR = "router error"
    CLIENT_LOGGED_IN = "client logged in"
    PROVISIONED = "provisioned"
    RETRY_ASKED = "retry asked"
    OWNER_ALERTED = "owner alerted"
    SALE_EMAIL_SENT = "sale email sent"
    SALE_EMAIL_NOT_SENT = "sale email not sent"


class CheckSource(StrEnum):
    """What made Kiosque ask the provider where a payment stands."""

    WEBHOOK = "webhook"
    ORDER_PAGE = "order page"
    BUYER_RETURNED = "buyer returned"
    WORKER = "worker poll"


class OrderEvent(db.Model):
    """One line of an order's timeline.

    The line is written for its reader from `facts` (amounts, references, what failed: plain
    values, in no language); `detail` keeps the technical text as it came (an error, a provider's
    message), shown on demand. Lines recorded before lines had facts have None.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[EventKind] = mapped_column(text_enum(EventKind, 40))
    facts: Mapped[dict | None] = mapped_column(JSON, default=dict)
    detail: Mapped[str] = mapped_column(String(500), default="")

    order: Mapped[Order] = relationship(back_populates="events")


class WebhookEvent(db.Model):
    """A provider callback exactly as it arrived, kept for audit and replay."""

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(10))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("payment_account.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    method: Mapped[str] = mapped_column(String(8))
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    body: Mapped[str] = mapped_column(Text, default="")
    signature_valid: Mapped[bool | None]
    outcome: Mapped[str] = mapped_column(String(40), default="")
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id", ondelete="SET NULL"), index=True)
