"""One blueprint per audience: buyers (shop), providers (webhooks), owners (owner/), everyone (public)."""

MAX_ID = 2**31 - 1  # ids and prices fit a 32-bit integer column on every database


def positive_int(raw) -> int | None:
    """An id, price or page number from a form or a query string; junk or out of range is None."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    return value if 0 < value <= MAX_ID else None
