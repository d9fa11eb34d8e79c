"""Tasks inside a WSGI app (Flask): the workers run in a background thread of the process.

    waitress-serve --port 8000 services.web_wsgi:web
    curl 'localhost:8000/greet?name=Ada'     ->  {"task": "...", "result": "Hello, Ada!"}

Start the thread once per process that serves requests (waitress: at import; a forking server
such as gunicorn: in its `post_fork` hook, since a thread does not survive a fork).
"""

from __future__ import annotations

import atexit
from typing import TYPE_CHECKING

from flask import Flask, jsonify, request

from services.mailer import app, render_greeting

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

worker = app.start_in_thread()  # returns once the workers read; enqueue_sync goes through it
atexit.register(worker.stop)  # drain on a clean exit

web = Flask(__name__)


@web.get("/greet")
def greet() -> ResponseReturnValue:
    handle = render_greeting.enqueue_sync(request.args.get("name", "world"))
    return jsonify(task=handle.id, result=handle.result_sync(timeout=10))
