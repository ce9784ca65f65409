"""The demo's mailbox: an SMTP server on the loopback keeping what Kiosque sends, and a page listing it.

`flask --app sandbox demo` starts it and points Kiosque's MAIL_* settings at it, so the demo's
sale emails, alerts and password reset links arrive somewhere one can read them, instead of
failing against a mail server that is not there. It keeps the last messages in memory only.
"""

import email
import socket
from collections import deque
from email.message import EmailMessage
from email.policy import default as email_policy

from aiosmtpd.controller import Controller
from flask import Blueprint, abort, current_app, render_template

from sandbox import allow_inline

KEPT = 50  # messages the page lists, the newest first

bp = Blueprint("mailbox", __name__, template_folder="templates")
bp.after_request(allow_inline)


class Mailbox:
    """An SMTP server on a free loopback port that keeps the messages it receives."""

    def __init__(self) -> None:
        self.received: deque[bytes] = deque(maxlen=KEPT)  # raw: read only when someone looks
        self.host = "127.0.0.1"
        with socket.socket() as probe:  # aiosmtpd checks its server by connecting: it needs a real port
            probe.bind((self.host, 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(envelope.content)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        """The kept messages, parsed. A method, not a property: aiosmtpd reads every attribute of
        its handler at each connection, and parsing them all there cost the load benchmark's mail
        server ~1 ms per message received."""
        return [email.message_from_bytes(raw, policy=email_policy) for raw in self.received]

    def start(self) -> "Mailbox":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def settings(self) -> dict:
        """Kiosque's mail settings for sending here: plain SMTP, no account."""
        return {"MAIL_SERVER": self.host, "MAIL_PORT": self.port, "MAIL_USE_TLS": False, "MAIL_USE_SSL": False,
                "MAIL_USERNAME": None, "MAIL_PASSWORD": None}


@bp.get("/")
def inbox():
    """What the demo sent, the newest first."""
    mailbox = current_app.extensions.get("kiosque.sandbox_mailbox")
    if mailbox is None:
        abort(404)
    messages = [(m, m.get_body(("plain",))) for m in reversed(mailbox.messages())]
    return render_template("sandbox/mail.html", messages=[(m, body.get_content() if body else "") for m, body in messages])
