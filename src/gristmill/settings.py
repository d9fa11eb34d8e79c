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

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from gristmill.errors import ConfigError
from gristmill.keys import DEFAULT_PREFIX
from gristmill.sentinel import is_sentinel_url
from gristmill.sentinel import parse as parse_sentinel_url

ENV_PREFIX = "GRISTMILL_"
URL_SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys", "redis+cluster", "rediss+cluster")
URL_SHAPE = (
    "redis://[user:password@]host[:port][/db], rediss://... for TLS, unix:///path/to.sock, "
    "or redis+sentinel://host:port[,host:port...]/master-name"
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
    # TLS for rediss:// URLs (docs/deploy.md: TLS). Unset: the system trust store, no client cert.
    tls_ca_file: Path | None = None  # PEM of the CA(s) that signed the server's certificate
    tls_cert_file: Path | None = None  # PEM client certificate, for servers that require one
    tls_key_file: Path | None = None  # its private key; required with tls_cert_file
    tls_check_hostname: bool = True  # False: any name in a certificate the CA signed is accepted
    # False: this process runs no delayed-entry sweeper; one `runtime sweep` does, under its own
    # ACL user (docs/deploy.md: ACLs). A service user may not write other services' lanes.
    sweeper: bool = True

    @field_validator("redis_url")
    @classmethod
    def _url_has_a_known_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not raw:
            return None  # an empty variable means "not set": use the embedded server
        parts = urlsplit(raw)
        if is_sentinel_url(raw):
            parse_sentinel_url(raw)  # its ValueError names the shape, never the password
            return SecretStr(raw)
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

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _tls_file_is_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError(f"{value}: no such readable file; give the path of a PEM file")
        return value

    @model_validator(mode="after")
    def _tls_cert_comes_with_its_key(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "GRISTMILL_TLS_CERT_FILE and GRISTMILL_TLS_KEY_FILE go together: set both or neither"
            )
        return self

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
            message = str(error["msg"]).removeprefix("Value error, ")
            if not error["loc"]:  # a rule across fields names its variables itself
                lines.append(message)
                continue
            lines.append(f"{env_name(str(error['loc'][0]))}: {message}")
        raise ConfigError("; ".join(lines)) from None
