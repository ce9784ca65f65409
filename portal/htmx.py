"""htmx responses, in one place: the rest of the app never touches htmx-flask directly."""

from flask import Response, redirect, render_template, request
from htmx_flask import make_response


def wants_fragment() -> bool:
    """An htmx swap asks for a fragment; a history restore or a plain browser wants the page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def render(page: str, fragment: str, status: int = 200, **context) -> Response:
    """The fragment for htmx, the whole page otherwise; both vary on the HX-Request header."""
    response = make_response(render_template(fragment if wants_fragment() else page, **context), status)
    response.vary.add("HX-Request")
    return response


def redirect_to(url: str) -> Response:
    """A redirect the browser itself follows: HX-Redirect for htmx, 303 See Other otherwise."""
    return make_response(redirect=url) if wants_fragment() else redirect(url, 303)


def reload_page() -> Response:
    """Ask htmx to reload the whole page (the polled fragment has nothing more to show)."""
    return make_response(refresh=True)
