"""Static files: versioned URLs kept by browsers for a year, and a favicon."""

import hashlib
import re
from pathlib import Path

PAGES = ("/retrieve", "/owner/login")


def linked_assets(client, path: str) -> list[str]:
    page = client.get(path).get_data(as_text=True)
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', page)


def test_pages_link_their_assets_by_content_digest(app):
    client = app.test_client()
    for path in PAGES:
        assets = linked_assets(client, path)
        assert any("kiosque.css" in a for a in assets) and any("favicon.ico" in a for a in assets), assets
        for url in assets:
            name, version = re.fullmatch(r"/static/([^?]+)\?v=([0-9a-f]{12})", url).groups()
            content = (Path(app.static_folder) / name).read_bytes()
            assert version == hashlib.sha256(content).hexdigest()[:12]
            response = client.get(url)
            assert response.status_code == 200 and response.data == content
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_without_the_current_digest_a_file_is_revalidated(app):
    client = app.test_client()
    for url in ("/static/kiosque.css", "/static/kiosque.css?v=000000000000"):
        response = client.get(url)
        assert response.status_code == 200 and "immutable" not in response.headers.get("Cache-Control", "")
        assert response.headers["ETag"]


def test_a_changed_file_gets_a_new_url(app, tmp_path):
    app.static_folder = str(tmp_path)
    client = app.test_client()
    style = tmp_path / "kiosque.css"
    style.write_text("body { color: black }")
    with app.test_request_context():
        first = app.url_for("static", filename="kiosque.css")
    style.write_text("body { color: navy; }")
    with app.test_request_context():
        second = app.url_for("static", filename="kiosque.css")
    assert first != second and client.get(second).data == b"body { color: navy; }"
    assert "immutable" not in client.get(first).headers.get("Cache-Control", "")  # the old URL is no longer kept


def test_the_favicon_is_served_small(app):
    response = app.test_client().get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype in ("image/vnd.microsoft.icon", "image/x-icon")
    assert response.data[:4] == b"\x00\x00\x01\x00" and len(response.data) < 1024
    assert "max-age=604800" in response.headers["Cache-Control"]
