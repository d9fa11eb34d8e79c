"""Who may do what on the dashboard (pure): reading is open, actions are opt-in.

- Reading needs nothing, but a dashboard bound to a loopback address answers only requests
  whose Host header names a loopback address: a page on another site that resolves its own
  name to 127.0.0.1 (DNS rebinding) gets 403, not the pipeline's state.
- Replay and purge need `--allow-actions`. Bound to anything but loopback they also need a
  token, which the page sends in the `X-Gristmill-Token` header; a configured token is always
  checked, and the header is required even without one: a custom header makes a browser ask
  before a cross-site POST (CORS preflight, which this app never grants), and an `Origin`
  other than the page's own is refused outright.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

TOKEN_HEADER = "x-gristmill-token"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True)
class ActionRules:
    """What the dashboard was started with: its bind address, `--allow-actions`, `--token`."""

    host: str
    allow_actions: bool = False
    token: str | None = None

    @property
    def local(self) -> bool:
        """True when bound to a loopback address only."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.1 and ::1 (with or without IPv6 brackets)."""
    return host.strip("[]").lower() in LOOPBACK_HOSTS


def start_problem(rules: ActionRules) -> tuple[str, str] | None:
    """Why the dashboard must not start with `rules`, as (problem, fix); None if it may."""
    if rules.token is not None and not rules.token.strip():
        return "--token is empty", "give --token a long random value, or leave it out"
    if rules.allow_actions and not rules.local and rules.token is None:
        return (
            f"--allow-actions on {rules.host} (not a loopback address) needs a token",
            (
                "add --token with a long random value (the page asks for it), "
                "or bind to 127.0.0.1, or drop --allow-actions"
            ),
        )
    return None


def host_header_name(host_header: str) -> str:
    """The host part of a Host header: `127.0.0.1:8090` -> `127.0.0.1`, `[::1]:80` -> `::1`."""
    return urlsplit(f"//{host_header}").hostname or ""


def read_refusal(rules: ActionRules, host_header: str) -> str | None:
    """Why a request for the page or its data is refused (403), or None."""
    if rules.local and not is_loopback(host_header_name(host_header)):
        return f"this dashboard answers only for loopback names, not {host_header!r}"
    return None


def action_refusal(
    rules: ActionRules, host_header: str, origin: str | None, token: str | None
) -> str | None:
    """Why a replay or purge request is refused (403), or None if it may run."""
    refused = read_refusal(rules, host_header)
    if refused is not None:
        return refused
    if not rules.allow_actions:
        return "actions are off: start `runtime ui` with --allow-actions"
    if origin is not None and urlsplit(origin).netloc.lower() != host_header.lower():
        return "the request comes from another site"
    if token is None:
        return f"the request has no {TOKEN_HEADER} header"
    if rules.token is not None and not hmac.compare_digest(token.encode(), rules.token.encode()):
        return "wrong token"
    return None
