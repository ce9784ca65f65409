"""Work that should not hold up a response: done right after it is sent, in the same process.

A provider waits for our answer to its webhook, and an owner for the page; an email about a
router's health or the owner's account can go a moment later. Only for what may be lost with the
process (the owner asks again) or that the worker catches up; sale emails are the worker's alone.
"""

from collections.abc import Callable

from flask import Flask, current_app, g, has_request_context


def after_response(task: Callable[..., object], *args) -> None:
    """Run `task(*args)` once the current response is sent (at once outside a request).

    Pass ids, not database objects: the task runs in a fresh application context.
    """
    if has_request_context():
        g.setdefault("kiosque_deferred", []).append((task, args))
    else:
        task(*args)


def register(app: Flask) -> None:
    @app.after_request
    def run_after_sending(response):
        tasks = g.pop("kiosque_deferred", [])
        if tasks:
            app_object = current_app._get_current_object()

            def run() -> None:
                with app_object.app_context():
                    for task, args in tasks:
                        task(*args)

            response.call_on_close(run)
        return response
