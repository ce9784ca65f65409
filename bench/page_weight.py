"""Bytes on the wire for the buyer's pages with everything they load, as a gzip-serving proxy sends them.

For the plans page (/r/<slug>), a pending order page and a settled order page: each resource's
raw and gzip-compressed size (level 6, nginx's default), the request count, and any host other
than Kiosque's own; and the page alone, which is all a later visit loads (static files are kept a
year under their versioned URLs). Target: at most 25 KB compressed per page, no third-party host.

    .venv/bin/python bench/page_weight.py
"""

import gzip
import re
from urllib.parse import urljoin, urlsplit

import requests

from staging import staged_kiosque

from portal.extensions import db
from portal.models import Order

TARGET_BYTES = 25 * 1024


def weigh(http: requests.Session, url: str) -> tuple[int, int, int, int, set[str]]:
    """(raw bytes, gzip bytes, gzip bytes of the page alone, requests, foreign hosts) for a page
    and what it loads."""
    page = http.get(url)
    own = urlsplit(url).netloc
    loads = re.findall(r'src="([^"]+)"', page.text) + re.findall(r'<link [^>]*href="([^"]+)"', page.text)
    bodies = [page.content] + [http.get(urljoin(url, src)).content for src in loads]
    foreign = {urlsplit(urljoin(url, src)).netloc for src in loads} - {own}
    packed = [len(gzip.compress(body, 6)) for body in bodies]
    return sum(map(len, bodies)), sum(packed), packed[0], len(bodies), foreign


def main() -> None:
    with staged_kiosque() as (app, base, stage):
        router = stage.router
        http = requests.Session()
        plans_url = f"{base}/r/{router.slug}?mac=02:00:00:00:00:01&ip=10.5.50.9&dst=http://example.com/&server=hotspot1"
        page = http.get(plans_url).text
        intent = re.search(r'name="intent" value="([^"]+)"', page).group(1)
        fedapay = next(a for a in router.accounts if a.provider == "fedapay")
        http.post(f"{base}/r/{router.slug}/buy", allow_redirects=False,
                  data={"intent": intent, "plan_id": router.plans[0].id, "account_id": fedapay.id})
        order = db.session.scalar(db.select(Order))
        rows = [("/r/<slug> (plans)", plans_url), ("/o/<code> pending", f"{base}/o/{order.code}")]
        measured = [(name, *weigh(http, url)) for name, url in rows]
        app.extensions["kiosque.provider_sandbox"].approve("fedapay", order.provider_ref)
        app.extensions["kiosque.provider_sandbox"].drain()
        measured.append(("/o/<code> ticket shown", *weigh(http, f"{base}/o/{order.code}")))
    print(f"{'page':<24} {'raw bytes':>9} {'gzip bytes':>10} {'gzip, later':>11} {'requests':>8}  third-party hosts")
    for name, raw, packed, later, count, foreign in measured:
        flag = "" if packed <= TARGET_BYTES else "  (over target)"
        print(f"{name:<24} {raw:>9} {packed:>10} {later:>11} {count:>8}  {', '.join(sorted(foreign)) or 'none'}{flag}")


if __name__ == "__main__":
    main()
