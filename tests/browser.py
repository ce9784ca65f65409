"""Browser fixtures, registered as a pytest plugin by tests/conftest.py: Debian's chromium, its
contexts, the app served over real HTTP with the demo stage, and screenshots of each step.

Test modules import the plain helpers (`Live`, `Shots`, `serve`, the `BUYER` and `OWNER`
viewports) from here; the fixtures come by name, like conftest.py's.
"""

import re
import shutil
import threading
import warnings
from pathlib import Path

import pytest
from playwright import sync_api
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from portal.extensions import db
from portal.models import Order
from sandbox import demo

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium, which .ci/run installs
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
BUYER = {"viewport": {"width": 360, "height": 740}, "locale": "fr-FR"}
OWNER = {"viewport": {"width": 1280, "height": 800}, "locale": "fr-FR"}


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args) -> None:
        """One line per request would bury the failures."""


def serve(app) -> tuple[BaseWSGIServer, threading.Thread, str]:
    """The app on a loopback port, in a thread of its own: the server, its thread and its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}"


class Live:
    """The app served on a loopback port with the demo stage."""

    def __init__(self, base: str, stage: demo.Stage, providers):
        self.base, self.stage, self.providers = base, stage, providers

    def url(self, path: str) -> str:
        return self.base + path

    def latest_order(self) -> Order:
        db.session.expire_all()  # the server's threads wrote it
        return db.session.scalar(db.select(Order).order_by(Order.id.desc()))


@pytest.fixture
def live(app):
    server, thread, base = serve(app)
    stage = demo.stage(app, base)
    try:
        yield Live(base, stage, app.extensions["kiosque.provider_sandbox"])
    finally:
        app.extensions["kiosque.provider_sandbox"].drain(timeout=5)
        server.shutdown()
        thread.join(5)
        stage.router_server.stop()


@pytest.fixture(scope="module")
def chromium():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def contexts(chromium):
    """New browser contexts (one per person), closed after the test."""
    made = []

    def new(**options):
        context = chromium.new_context(**options)
        context.set_default_timeout(10_000)
        made.append(context)
        return context

    yield new
    for context in made:
        context.close()


class Shots:
    """Full-page screenshots of each step, numbered in order, in the test's own folder."""

    def __init__(self, folder: Path):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder, self.count = folder, 0

    def __call__(self, page, step: str) -> None:
        self.count += 1
        try:
            page.screenshot(path=self.folder / f"{self.count:02d}-{step}.png", full_page=True)
        except sync_api.Error as exc:
            # A screenshot is evidence, not an assertion: Chromium on a loaded machine sometimes
            # cannot make the frame ("Unable to capture screenshot"); the test's checks still run.
            warnings.warn(f"screenshot {step!r} not taken: {str(exc).splitlines()[0]}")


@pytest.fixture
def shots(request) -> Shots:
    return Shots(ARTIFACTS / re.sub(r"[^\w.-]+", "-", request.node.name).strip("-"))
