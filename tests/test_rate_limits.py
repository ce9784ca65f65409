import pytest

from tests.conftest import Browser


@pytest.fixture
def app_config(app_config):
    return {**app_config, "RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "5 per minute",
            "RETRIEVE_RATE_LIMIT": "5 per minute"}


def test_login_attempts_are_rate_limited(app, owner):
    browser = Browser(app.test_client())
    codes = [browser.login("owner@example.com", "wrong").status_code for _ in range(7)]
    assert codes == [401] * 5 + [429, 429]
    # The page after the limit is the French error page, not a stack trace.
    assert "Trop de tentatives" in browser.login("owner@example.com", "owner-password").get_data(as_text=True)


def test_code_retrieval_is_rate_limited(app):
    client = app.test_client()
    codes = [client.post("/retrieve", data={"reference": f"GUESS{i:05d}", "phone": "2290197000000"}).status_code
             for i in range(7)]
    assert codes == [404] * 5 + [429, 429]
