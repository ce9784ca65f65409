"""Static files under URLs that carry a digest of their content, kept by browsers for a year.

On a slow link each revalidation of a stylesheet or script costs a round trip per page. So
`url_for("static", ...)` adds `v=<digest>`, and a request naming the current digest is answered
`Cache-Control: public, max-age=31536000, immutable`: after the first visit a page loads its
assets from the browser's cache without asking. A changed file gets a new URL; a request without
the digest (or with an old one) is answered as before, to be revalidated. The favicon is also
served at /favicon.ico, where browsers look for it when a page names none.
"""

import hashlib
import os
from pathlib import Path

from flask import Flask, request, send_from_directory
from werkzeug.security import safe_join

IMMUTABLE = "public, max-age=31536000, immutable"
FAVICON_MAX_AGE = 7 * 24 * 3600  # its URL has no digest: a week, then revalidated


def register(app: Flask) -> None:
    digests: dict[tuple[str, int, int], str] = {}

    def digest(filename: str) -> str | None:
        """The file's digest, computed once per version of the file (its modification time and size)."""
        path = safe_join(app.static_folder, filename)
        if path is None or not os.path.isfile(path):
            return None
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        if key not in digests:
            digests[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
        return digests[key]

    @app.url_defaults
    def add_digest(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "v" not in values:
            version = digest(values.get("filename", ""))
            if version:
                values["v"] = version

    @app.after_request
    def cache_for_a_year(response):
        if (request.endpoint == "static" and response.status_code in (200, 304)
                and request.args.get("v") == digest(request.view_args["filename"])):
            response.headers["Cache-Control"] = IMMUTABLE
        return response

    @app.get("/favicon.ico")
    def favicon():
        return send_from_directory(app.static_folder, "favicon.ico", max_age=FAVICON_MAX_AGE)
