import pytest

from tests.conftest import CREDENTIALS, LOG_LINES, SECRETS


@pytest.mark.after_everything
def test_no_secret_was_ever_logged():
    """Router passwords, provider keys and ticket passwords never appear in any log record of the run."""
    secrets = set(SECRETS)
    secrets.update(v for c in CREDENTIALS.values() for k, v in c.items() if k not in ("site_id", "shop_id", "public_key"))
    # Voucher codes are usernames too and may be short: only long enough ones are searched for.
    secrets = {s for s in secrets if len(s) >= 6}
    assert LOG_LINES, "no log record was collected"
    leaks = {s: line for s in secrets for line in LOG_LINES if s in line}
    assert not leaks, leaks
