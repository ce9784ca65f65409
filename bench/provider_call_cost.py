"""What one call to a provider's status API costs the thread that makes it, in CPU: through the
adapters' session (requests), and through urllib3's connection pool directly, which requests
wraps. The difference is what moving the adapters off requests would save on every status check.

The sandbox FedaPay answers on loopback, in this process's other threads (the figure is the
calling thread's CPU only). The ways are interleaved, round by round, so that a busy machine
slows them alike; each figure is the range over the rounds.

    .venv/bin/python bench/provider_call_cost.py [--runs 300] [--rounds 5]
"""

import argparse
import json
import re

import requests
import urllib3

from staging import compare_cpu, staged_kiosque

from portal.extensions import db
from portal.models import Order
from portal.services.accounts import provider_for
from sandbox import demo

TIMEOUT = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="calls per way and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with staged_kiosque() as (_app, base, stage):
        account = next(a for a in stage.router.accounts if a.provider == "fedapay")
        adapter = provider_for(account)
        http = requests.Session()  # a buyer: one order, its payment started at the sandbox
        page = http.get(f"{base}/r/{stage.router.slug}", timeout=TIMEOUT).text
        intent = re.search(r'name="intent" value="([^"]+)"', page).group(1)
        http.post(f"{base}/r/{stage.router.slug}/buy", allow_redirects=False, timeout=TIMEOUT,
                  data={"intent": intent, "plan_id": stage.router.plans[0].id, "account_id": account.id})
        order = db.session.scalar(db.select(Order))
        path = f"/v1/transactions/{order.provider_ref}?include=currency"
        headers = {"Authorization": f"Bearer {demo.CREDENTIALS['fedapay']['secret_key']}"}
        pool = urllib3.PoolManager()
        ways = {
            "the adapter's status check (request, answer read, typed)": lambda: adapter.fetch_status(
                order.provider_ref, order.code, None),
            "the same GET through the adapters' requests session": lambda: adapter.session.request(
                "GET", adapter.base_url + path, headers=headers, timeout=TIMEOUT).json(),
            "the same GET through urllib3's pool directly": lambda: json.loads(pool.request(
                "GET", adapter.base_url + path, headers=headers, timeout=TIMEOUT).data),
        }
        compare_cpu(ways, args.runs, args.rounds, "one status call to the sandbox FedaPay")


if __name__ == "__main__":
    main()
