"""Deleting what an owner has, always after a confirmation, with or without JavaScript.

The delete button sits in a GET form that leads to a confirmation page, whose POST form deletes.
With JavaScript, htmx posts from the same button once the browser's dialog (hx-confirm) said yes:
htmx asks only for requests it sends itself, so the button carries hx-post.
"""

from collections.abc import Callable

from flask import render_template, request

from portal import htmx


def confirm(*, question: str, consequence: str, back: str, done: str, refusal: str | None,
            delete: Callable[[], None]):
    """GET: the confirmation page (or why it cannot be deleted). POST: delete, then go to `done`."""
    if request.method == "POST" and refusal is None:
        delete()
        return htmx.redirect_to(done)
    refused_now = request.method == "POST"  # something came to depend on it since the page was shown
    if refused_now and htmx.wants_fragment():
        return htmx.redirect_to(request.path)  # the confirmation page says why
    return render_template("owner/delete.html", question=question, consequence=consequence, back=back,
                           refusal=refusal), 409 if refused_now else 200
