"""The sales page of a new owner lists the steps to the first sale, until that sale."""

import re
from datetime import datetime, timezone

from portal.models import OrderStatus
from tests.conftest import page_text
from tests.factories import make_order, make_plan, make_router


def test_the_first_steps_show_until_the_first_sale(app, browser, owner):
    def steps() -> list[str]:
        page = page_text(browser.get("/owner/"))
        if "Pour votre première vente" not in page:
            return []
        section = page.split('id="first-steps"', 1)[1].split("</section>", 1)[0]
        return [" ".join(re.sub(r"<[^>]+>", "", item).split()) for item in re.findall(r"<li[^>]*>(.*?)</li>", section, re.S)]

    assert steps()[:2] == ["Ajouter le routeur", "Tester la connexion"]
    assert 'href="/owner/routers/new"' in page_text(browser.get("/owner/"))
    router = make_router(owner, last_contact_at=datetime.now(timezone.utc))
    make_plan(router)
    assert steps()[:4] == ["✓ Ajouter le routeur (fait)", "✓ Tester la connexion (fait)", "✓ Créer les forfaits (fait)",
                           "Ajouter un compte de paiement et le proposer sur le routeur"]
    assert f'href="/owner/routers/{router.id}/kit"' in page_text(browser.get("/owner/"))
    make_order(router, status=OrderStatus.PROVISIONED, paid_at=datetime.now(timezone.utc))
    assert steps() == []
