"""A bridge as declared by `app.bridge(...)`: pure data and its validation, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gristmill.errors import ConfigError

__all__ = ("BridgeSpec", "bridge_spec")

_NAME = re.compile(r"^[A-Za-z0-9_.\-:]+$")
MAX_BATCH = 1000  # messages per script call: a few ms of server time at most


@dataclass(frozen=True)
class BridgeSpec:
    """One pub/sub -> stream bridge (see `App.bridge` for the meaning of each field)."""

    name: str
    stream: str
    channel: str | None = None
    pattern: str | None = None
    redundant: bool = False
    dedup_field: str | None = None
    window: float = 10.0  # seconds (redundant mode)
    buffer: int = 100_000  # messages held between the subscription and the writer
    batch: int = MAX_BATCH
    maxlen: int | None = None

    @property
    def source(self) -> str:
        """What it subscribes to, for logs: `channel orders.in` or `pattern orders.*`."""
        return f"channel {self.channel}" if self.channel else f"pattern {self.pattern}"


def bridge_spec(
    *,
    channel: str | None,
    pattern: str | None,
    stream: str,
    name: str | None,
    redundant: bool,
    dedup_field: str | None,
    window: float,
    buffer: int,
    batch: int,
    maxlen: int | None,
) -> BridgeSpec:
    """A validated BridgeSpec.

    Raises:
        ConfigError: If both or neither of channel/pattern are given, or a value is out of range.
    """
    if (channel is None) == (pattern is None):
        raise ConfigError("app.bridge: give exactly one of channel= or pattern=")
    source = channel if channel is not None else pattern
    bridge_name = name or re.sub(r"[^A-Za-z0-9_.\-:]", "_", str(source))
    what = f"bridge {bridge_name!r}"
    if not _NAME.match(bridge_name):
        raise ConfigError(f"{what}: name= must be letters, digits, '.', '_', '-' or ':'")
    if not source or not stream or any(ch.isspace() for ch in stream + str(source)):
        raise ConfigError(f"{what}: channel/pattern and stream must be non-empty names")
    if dedup_field is not None and not redundant:
        raise ConfigError(f"{what}: dedup_field= only applies with redundant=True")
    if window <= 0:
        raise ConfigError(f"{what}: window= must be positive seconds")
    if not 1 <= batch <= MAX_BATCH:
        raise ConfigError(f"{what}: batch= must be 1..{MAX_BATCH}")
    if buffer < batch:
        raise ConfigError(f"{what}: buffer= must hold at least one batch ({batch})")
    if maxlen is not None and maxlen < 1:
        raise ConfigError(f"{what}: maxlen= must be at least 1")
    return BridgeSpec(
        name=bridge_name, stream=stream, channel=channel, pattern=pattern, redundant=redundant,
        dedup_field=dedup_field, window=window, buffer=buffer, batch=batch, maxlen=maxlen,
    )  # fmt: skip
