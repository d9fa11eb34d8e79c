"""Settings: read once from the environment (prefix GRISTMILL_) and `.env`, then passed down.

A bad value fails at start with a ConfigError naming the variable and what it expects; an
unknown GRISTMILL_ variable (a typo) fails the same way rather than being ignored. Secrets (the
Redis URL may hold a password) are SecretStr: masked in repr, logs and dumps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gristmill.errors import ConfigError
from gristmill.keys import DEFAULT_PREFIX

ENV_PREFIX = "GRISTMILL_"
URL_SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys")
URL_SHAPE = (
    "redis://[user:password@]host[:port][/db], rediss://... for TLS, or unix:///path/to.sock"
)


class Settings(BaseSettings):
    """Everything a gristmill process can be told from outside; frozen once read."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", frozen=True, extra="forbid"
    )

    redis_url: SecretStr | None = None  # None: start the embedded server
    key_prefix: str = DEFAULT_PREFIX
    data_dir: Path = Path(".gristmill")  # the embedded server's AOF lives here
    batch: PositiveInt = 500  # entries per XREADGROUP
    concurrency: PositiveInt = 64  # handlers in flight per processor
    block_ms: PositiveInt = 1000  # how long one XREADGROUP waits for new entries
    claim_idle: PositiveFloat = 30.0  # seconds an entry may sit with a dead consumer
    grace: PositiveFloat = 10.0  # seconds SIGTERM waits for in-flight handlers
    socket_timeout: PositiveFloat = 5.0  # seconds; a blackholed server surfaces within this
    connect_timeout: PositiveFloat = 2.0
    max_entry_bytes: PositiveInt = 1 << 20  # larger entries are dead-lettered as `oversize`
    compress_above: int = Field(default=4096, ge=0)  # zstd payloads larger than this; 0: never
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    delayed_layout: Literal["buckets", "zset"] = "buckets"  # docs/delayed.md: memory vs precision
    delayed_bucket_ms: PositiveInt = 1000  # bucket width: entries are released up to this late
    lease_ttl_ms: PositiveInt = 2000  # leader lease; failover takes at most ttl + renew interval
    # retention of each dead-letter lane, trimmed by the upkeep like outputs (0: no limit):
    # about this many newest records are kept, and none younger than dead_letter_min_age s
    dead_letter_maxlen: int = Field(default=1_000_000, ge=0)
    dead_letter_min_age: float = Field(default=0.0, ge=0)

    @field_validator("redis_url")
    @classmethod
    def _url_has_a_known_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not raw:
            return None  # an empty variable means "not set": use the embedded server
        parts = urlsplit(raw)
        if parts.scheme not in URL_SCHEMES:
            # never echo the value: it may hold a password
            raise ValueError(f"expected {URL_SHAPE}")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError(f"the URL has no host; expected {URL_SHAPE}")
        if parts.scheme == "unix" and not parts.path:
            raise ValueError("a unix URL needs a socket path: unix:///path/to.sock")
        return SecretStr(raw)

    @field_validator("key_prefix")
    @classmethod
    def _prefix_is_plain(cls, value: str) -> str:
        # braces are allowed as one hash tag (`{gm}:`): on a cluster it keeps gristmill's
        # global keys (registry, leases) in one slot, as its scripts need
        tagged = value.count("{") == value.count("}") <= 1 and value.find("{") < value.find("}")
        if not value or any(ch.isspace() for ch in value) or not (tagged or "{" not in value):
            raise ValueError(
                "expected a non-empty prefix without spaces, like 'gm:', or with one hash "
                "tag, like '{gm}:'"
            )
        return value

    @property
    def embedded(self) -> bool:
        """True when no Redis URL is configured and a private server will be started."""
        return self.redis_url is None


def env_name(field: str) -> str:
    """The environment variable that sets `field`: `redis_url` -> `GRISTMILL_REDIS_URL`."""
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, or raise ConfigError with one line per bad variable.

    Raises:
        ConfigError: If a GRISTMILL_ variable is unknown or has a bad value.
    """
    known = {env_name(name) for name in Settings.model_fields}
    unknown = sorted(
        name for name in os.environ if name.startswith(ENV_PREFIX) and name not in known
    )
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: unknown setting; known ones are {', '.join(sorted(known))}"
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{env_name(field)}: {message}")
        raise ConfigError("; ".join(lines)) from None
