"""An order's timeline and its errors as the owner reads them: sentences in the owner's language,
router failures in the words of the connection test, the technical detail behind 'détails'."""

import html
import re

import pytest

from portal.extensions import db
from portal.models import EventKind, Order, OrderEvent, OrderStatus, Router, utcnow
from portal.routeros.client import RouterConnectionLost, RouterSlow, RouterTimeout, RouterUnreachable
from portal.services import routers as router_service
from tests.conftest import Browser, Buyer, latest_order, wait_for
from tests.factories import make_order, make_router

REFUSED = router_service.describe_router_error(RouterUnreachable("x", host="h", port=1))
# What the recorded details hold (exceptions, English words) and no owner should read in a line.
TECHNICAL = re.compile(r"attempt|says|by the owner|ticket \d+ on router|Errno|refused|cannot open|webhook|"
                       r"\b(paid|failed|cancelled|expired)\b", re.I)


def lines(page: str) -> list[str]:
    """The timeline's lines as a reader sees them with every 'détails' closed."""
    timeline = re.search(r'<ol class="timeline">(.*?)</ol>', page, re.S).group(1)
    items = re.findall(r"<li>(.*?)</li>", re.sub(r"<details>.*?</details>", "", timeline, flags=re.S), re.S)
    return [re.sub(r"[ \n]+", " ", html.unescape(re.sub(r"<[^>]+>", " ", item))).strip() for item in items]


def details(page: str) -> list[str]:
    return [html.unescape(d) for d in re.findall(r"<details><summary>[^<]*</summary><code>(.*?)</code>", page, re.S)]


@pytest.fixture
def owner_browser(app, shop) -> Browser:
    browser = Browser(app.test_client())
    assert browser.login("maquis@example.com", "maquis-password").status_code == 302
    return browser


def test_a_paid_order_the_router_refused_reads_in_french_with_the_connection_tests_words(
        shop, live_server, provider_sandbox, router_server, owner_browser):
    Buyer(live_server, shop).buy("fedapay")
    order = latest_order()
    router_server.mode = "refuse"
    provider_sandbox.approve("fedapay", order.provider_ref)
    wait_for(lambda: latest_order().attempts == 1 and latest_order().last_error != "")

    page = owner_browser.get(f"/owner/orders/{order.id}").get_data(as_text=True)
    said = lines(page)
    text = "\n".join(said)
    assert "Commande de 1 heure à 200\u00a0FCFA, payée par FedaPay." in text
    assert f"Paiement ouvert chez FedaPay, référence {order.provider_ref}." in text
    assert "Notification de FedaPay : paiement réussi. Kiosque vérifie." in text
    assert "Paiement de 200\u00a0FCFA confirmé par FedaPay" in text
    assert "Vérifié auprès du fournisseur après sa notification." in text
    assert f"Ticket pas encore créé (essai 1) : {REFUSED}" in text
    assert not any(TECHNICAL.search(line) for line in said), said
    # The router's own words stay available, behind 'détails'.
    assert any("cannot open an API session" in d for d in details(page))
    # The same sentence as the router page's connection test, and as the last error.
    tested = html.unescape(owner_browser.post(f"/owner/routers/{shop.id}/test").get_data(as_text=True))
    assert REFUSED in tested
    last_error = re.search(r"Dernière erreur</dt>\s*<dd><span class=\"error\">(.*?)</span>", page, re.S).group(1)
    assert html.unescape(last_error) == f"Ticket pas encore créé (essai 1) : {REFUSED}"

    # 'Réessayer maintenant' while the router still refuses: the same words, never the exception.
    db.session.execute(db.update(Router).values(retry_at=utcnow()))
    db.session.execute(db.update(Order).values(next_attempt_at=None))
    db.session.commit()
    retried = owner_browser.post(f"/owner/orders/{order.id}/retry", follow_redirects=True).get_data(as_text=True)
    said = lines(retried)
    assert "Vous avez demandé un nouvel essai." in said[-2]
    assert said[-1].endswith(f"Ticket pas encore créé (essai 2) : {REFUSED}")
    assert "Connection refused" not in re.sub(r"<details>.*?</details>", "", retried, flags=re.S)

    # Once the router answers, the rest of the story in the same tone; in English for an English reader.
    router_server.mode = "normal"
    db.session.execute(db.update(Router).values(retry_at=utcnow()))
    db.session.commit()
    owner_browser.post(f"/owner/orders/{order.id}/retry")
    assert db.session.get(Order, order.id, populate_existing=True).status == OrderStatus.PROVISIONED
    owner_browser.get("/lang/en")
    english = lines(owner_browser.get(f"/owner/orders/{order.id}").get_data(as_text=True))
    assert any(line.endswith("Order for 1 heure at 200\u00a0FCFA, paid with FedaPay.") for line in english)
    assert any(line.endswith("Ticket created on router Maquis.") for line in english)
    assert any(line.endswith("No ticket yet (attempt 1): Kiosque could not open an API session with this router: "
                             "check the address, the port, the firewall and that the API service is enabled "
                             "(/ip service).") for line in english)


def test_lines_recorded_before_lines_had_facts_read_as_their_kind(browser, owner):
    order = make_order(make_router(owner), status=OrderStatus.FAILED)
    db.session.add(OrderEvent(order_id=order.id, kind=EventKind.FAILED, facts=None, detail="webhook: failed"))
    db.session.commit()
    page = browser.get(f"/owner/orders/{order.id}").get_data(as_text=True)
    assert lines(page)[0].endswith("paiement refusé ou annulé") and details(page) == ["webhook: failed"]


def test_a_session_that_broke_is_not_told_as_a_router_out_of_reach(app):
    """The router answered before its session broke or went quiet: the address and port are right."""
    def said(*failures) -> set[str]:
        return {router_service.describe_router_error(failure("x", host="h", port=1)) for failure in failures}

    lost, out_of_reach = said(RouterConnectionLost, RouterSlow), said(RouterUnreachable, RouterTimeout)
    assert lost == {"La session API s'est coupée ou n'a plus répondu à temps : le routeur est peut-être surchargé."}
    assert out_of_reach == {REFUSED}
