"""Tasks shared by the web examples: declared once, enqueued by the web app, run by workers
(embedded in the web process here; `runtime serve services.mailer:app` runs them anywhere)."""

from __future__ import annotations

from gristmill import App, RetryPolicy

app = App("mailer")


@app.task(queue="mail", retry=RetryPolicy(max_attempts=3), ttl=300)
async def render_greeting(name: str, times: int = 1) -> str:
    """Render a greeting (stands in for sending a mail)."""
    return " ".join([f"Hello, {name}!"] * times)
