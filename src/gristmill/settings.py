"""Settings: read once from the environment (prefix GRISTMILL_) and `.env`, then passed down.

A bad value fails at start with a ConfigError naming the variable and what it expects; an
unknown GRISTMILL_ variable (a typo) fails the same way rather than being ignored. Secrets (the
Redis URL may hold a password) are SecretStr: masked in repr, logs and dumps.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
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

    # extra="ignore": a .env shared with other tools holds keys without our prefix; unknown
    # GRISTMILL_ keys are refused by load_settings, named as written
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", frozen=True, extra="ignore"
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
    lease_ttl_ms: int = Field(default=2000, ge=30)  # leader lease; failover <= ttl + renewal
    start_timeout: float = Field(default=30.0, ge=0)  # h2: seconds to retry an unreachable server
    # at start, with backoff, before giving up (0: try once)
    health_port: int = Field(default=8080, ge=0, le=65535)  # /livez /readyz /metrics; 0: off
    health_host: str = "0.0.0.0"  # probes and scrapes come from outside the pod
    health_stale: PositiveFloat = 5.0  # seconds without an event-loop heartbeat: not alive
    log_format: Literal["text", "json"] = "text"  # json: one object per line, with trace ids
    # TLS for rediss:// URLs (docs/deploy.md: TLS). Unset: the system trust store, no client cert.
    tls_ca_file: Path | None = None  # PEM of the CA(s) that signed the server's certificate
    tls_cert_file: Path | None = None  # PEM client certificate, for servers that require one
    tls_key_file: Path | None = None  # its private key; required with tls_cert_file
    tls_check_hostname: bool = True  # False: any name in a certificate the CA signed is accepted
    # False: this process runs no delayed-entry sweeper; one `runtime sweep` does, under its own
    # ACL user (docs/deploy.md: ACLs). A service user may not write other services' lanes.
    sweeper: bool = True
    # retention of each dead-letter lane, trimmed by the upkeep like outputs (0: no limit):
    # about this many newest records are kept, and none younger than dead_letter_min_age s
    dead_letter_maxlen: int = Field(default=1_000_000, ge=0)
    dead_letter_min_age: float = Field(default=0.0, ge=0)
    # the task targets this process serves, comma-separated (`gpu,eu`): a task declared with
    # target= runs only where its target is listed; tasks without a target run everywhere
    targets: str = ""
    # False: this process runs no scheduler (one replica holding the lease fires schedules)
    scheduler: bool = True
    # True: a processor idle for a few reads closes its connections until a watcher (one per
    # process) sees an entry for it (pipeline/parking.py); False: idle ones keep blocking
    park_idle: bool = True
    # on Redis Cluster, outputs written to another master than their input's wait (WAIT) until
    # this many of its replicas have them before the inputs are acked; 0: no wait, and a
    # master killed before its replica had them loses them (docs/deploy.md: Redis Cluster)
    wait_replicas: int = Field(default=0, ge=0)
    wait_timeout_ms: PositiveInt = 1000  # past this the batch is an incident and is redone

    @property
    def served_targets(self) -> frozenset[str]:
        """GRISTMILL_TARGETS as a set of names."""
        return frozenset(name.strip() for name in self.targets.split(",") if name.strip())

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("max_entry_bytes", mode="before")
    @classmethod
    def _size_with_unit(cls, value: object) -> object:
        return parse_size(value) if isinstance(value, str) else value

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
        if self.wait_replicas and self.wait_timeout_ms >= self.socket_timeout * 1000:
            raise ValueError(
                "GRISTMILL_WAIT_TIMEOUT_MS must be shorter than GRISTMILL_SOCKET_TIMEOUT "
                f"({self.socket_timeout:g} s), or a slow replica reads as a dead server"
            )
        return self

    @property
    def embedded(self) -> bool:
        """True when no Redis URL is configured and a private server will be started."""
        return self.redis_url is None


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_UNITS |= {"kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(text: str) -> int:
    """Bytes in `text`: `1048576`, `1MiB`, `512 KiB`, `2MB` (KB/MB/GB are powers of 1000).

    Raises:
        ValueError: If `text` is not a whole number of bytes with a known unit.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"expected a size like 1048576, 1MiB or 512KiB, not {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def _dotenv_keys() -> list[str]:
    try:
        return list(dotenv_values(".env"))
    except OSError:
        return []


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
        name
        for name in {*os.environ, *_dotenv_keys()}
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
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
