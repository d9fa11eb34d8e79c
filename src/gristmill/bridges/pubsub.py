"""Pub/sub -> stream bridges: what is published to a channel becomes an entry of a stream.

Single mode (default): every replica runs the bridge; the holder of the lease
`bridge:<name>` (SET NX PX, timing/leader.py) subscribes and writes, the others stand by and
take over within the lease ttl plus one renew interval when it dies. Every batch goes through
scripts/bridge_write.lua, which checks the leader's token first: an ex-leader that was paused
or cut off cannot write after its successor took over. Pub/sub is at-most-once, so what is
published while no replica is subscribed (a failover) is lost; the log and counts say how much
could not be written, not how much nobody received.

Redundant mode (`redundant=True`): every replica subscribes and writes through
scripts/bridge_dedup.lua, which remembers each message's dedup key (a BLAKE2b digest of the
payload, or the JSON field the user names) for one to two windows and skips repeats, so a dead
replica costs nothing while another lives.

The leader does not parse: entries carry the payload as received (`payload`, plus `channel`
for pattern bridges); processors parse them (`input_format="json"`). Between the
subscription and the writer sits a bounded buffer (buffer.py): when the server is slower than
the publishers, the bridge warns once per slow write and once per incident of drops, and
counts them, instead of blocking the subscription until the server drops the client for
exceeding its output buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any, cast

import anyio
import hiredis
from redis.exceptions import RedisError

from gristmill import keys, scripts
from gristmill.bridges.buffer import BridgeBuffer, BridgeCounts
from gristmill.connect import (
    cluster_master,
    is_cluster_url,
    plain_node_url,
    resp_url,
    tls_context,
)
from gristmill.pipeline.cluster import node_url
from gristmill.pipeline.resp import RespConnection, is_error, pack_command
from gristmill.timing.leader import Lease

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from gristmill.bridges.spec import BridgeSpec
    from gristmill.settings import Settings

__all__ = ("Bridge",)

log = logging.getLogger(__name__)

IN_FLIGHT = 4  # batches sent and not yet answered: the pipeline's depth
SLOW_WRITE_S = 1.0  # a batch unanswered this long is reported (once per batch)
RECONNECT_S = 0.5


class _Subscription(asyncio.Protocol):
    """The subscribed connection's protocol: every pushed message goes into the buffer."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.reader = hiredis.Reader()
        self.confirmed = asyncio.Event()
        self.lost = asyncio.Event()
        self.transport: asyncio.BaseTransport | None = None

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        put = self.bridge.buffer.put
        wake = self.bridge.wake
        while (reply := reader.gets()) is not False:
            kind = reply[0]
            if kind == b"message":
                first_drop = put(reply[1], reply[2])
            elif kind == b"pmessage":
                first_drop = put(reply[2], reply[3])
            else:  # subscribe / psubscribe confirmation
                self.confirmed.set()
                continue
            if first_drop:
                self.bridge.report_drops()
        wake.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self.bridge.wake.set()


class Bridge:
    """Runs one bridge of an app: leader election (single mode), subscription, writes."""

    def __init__(self, spec: BridgeSpec, redis: Redis, settings: Settings, url: str) -> None:
        self.spec = spec
        self.redis = redis
        self.settings = settings
        self.url = url
        self.counts = BridgeCounts()
        self.buffer = BridgeBuffer(spec.buffer, self.counts)
        self.wake = asyncio.Event()
        self.lease = Lease(
            redis, keys.bridge_role(spec.name), ttl_ms=settings.lease_ttl_ms,
            prefix=settings.key_prefix,
        )  # fmt: skip
        self.subscribed: anyio.Event | None = None  # set while this replica is subscribed
        self._stop = anyio.Event()
        self._subscription: _Subscription | None = None
        self._script = scripts.load("bridge_dedup" if spec.redundant else "bridge_write")
        self._flags = (str(spec.maxlen or 0).encode(), b"1" if spec.pattern else b"0")
        # on a cluster the lease key lives in another slot than the stream: the script checks
        # the token's epoch against a fence key in the stream's slot instead
        self._cluster = is_cluster_url(url)
        self._fence = (keys.bridge_fence(spec.stream), "epoch") if self._cluster else None

    def stop(self) -> None:
        """Unsubscribe, write what is buffered (while still entitled to), and return."""
        self._stop.set()
        if self._subscription is not None and self._subscription.transport is not None:
            self._subscription.transport.close()

    def report_drops(self) -> None:
        log.warning(
            "bridge %s: buffer full (%d messages): dropping what %s delivers until the "
            "server catches up (counted in dropped_full)",
            self.spec.name, self.spec.buffer, self.spec.source,
        )  # fmt: skip

    async def run(self) -> None:
        """Bridge until `stop()`: as leader (single mode) or as one of N (redundant)."""
        self.subscribed = anyio.Event()
        while not self._stop.is_set():
            if self.spec.redundant:
                await self._term(None)
            elif await self._try_acquire():
                self.counts.terms += 1
                async with self.lease.hold():
                    await self._term(self.lease.token)
                lost = self.buffer.clear()
                if lost:
                    self.counts.dropped_fenced += lost
                    log.warning("bridge %s: %d buffered messages lost with the lease",
                                self.spec.name, lost)  # fmt: skip
            if self._stop.is_set():
                return
            with anyio.move_on_after(self.lease.renew_ms / 1000):
                await self._stop.wait()

    async def _try_acquire(self) -> bool:
        try:
            return await self.lease.acquire()
        except (RedisError, OSError) as exc:
            log.warning("bridge %s lease: cannot reach the server: %s", self.spec.name, exc)
            return False

    async def _term(self, token: str | None) -> None:
        """Subscribe and write until the subscription or the writer fails, or stop."""
        try:
            writer = await self._connect(await self._writer_url(), "w")
        except (OSError, TimeoutError, RedisError) as exc:
            log.warning("bridge %s: cannot connect: %s", self.spec.name, exc)
            await anyio.sleep(RECONNECT_S)
            return
        try:
            await writer.call("SCRIPT", "LOAD", self._script.source)
            await self._subscribe()
            log.info(
                "bridge %s: %s -> stream %s (%s)", self.spec.name, self.spec.source,
                self.spec.stream, "redundant" if token is None else f"leader, token {token}",
            )  # fmt: skip
            await self._write_loop(writer, token)
        except (OSError, TimeoutError, RedisError, ConnectionError) as exc:
            if not self._stop.is_set():
                log.warning("bridge %s: connection lost, reconnecting: %s", self.spec.name, exc)
                await anyio.sleep(RECONNECT_S)
        finally:
            self._unsubscribe()
            writer.close()

    async def _writer_url(self) -> str:
        """Where the stream is written: the server, the sentinels' primary, or on a cluster
        the master of the stream's slot (a cluster's pub/sub reaches every node)."""
        if not self._cluster:
            return await resp_url(self.url, self.settings)
        # the slot map now: a term may follow a failover
        node = await cluster_master(cast("RedisCluster", self.redis), self.spec.stream, fresh=True)
        return node_url(plain_node_url(self.url), (node.host, int(node.port)))

    async def _connect(self, url: str, role: str) -> RespConnection:
        return await RespConnection.open(
            url, connect_timeout=self.settings.connect_timeout,
            name=f"gristmill-bridge-{role}:{self.spec.name}",
            tls=tls_context(self.url, self.settings),  # h8: TLS settings, see connect.py
        )  # fmt: skip

    async def _subscribe(self) -> None:
        timeout = self.settings.connect_timeout
        url = plain_node_url(self.url) if self._cluster else await resp_url(self.url, self.settings)
        connection = await self._connect(url, "s")
        # the set-up replies are in; from here on the connection only receives pushes
        transport = connection._protocol.transport  # hand the link over
        assert transport is not None
        subscription = _Subscription(self)
        subscription.transport = transport
        transport.set_protocol(subscription)
        self._subscription = subscription
        if self.spec.channel is not None:
            transport.write(pack_command(("SUBSCRIBE", self.spec.channel)))
        else:
            transport.write(pack_command(("PSUBSCRIBE", str(self.spec.pattern))))
        with anyio.fail_after(timeout):
            await subscription.confirmed.wait()
        assert self.subscribed is not None
        self.subscribed.set()

    def _unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None and subscription.transport is not None:
            subscription.transport.close()
        self.subscribed = anyio.Event()

    async def _write_loop(self, writer: RespConnection, token: str | None) -> None:
        subscription = self._subscription
        assert subscription is not None
        pending: list[tuple[asyncio.Future[Any], bytes, int]] = []
        while True:
            batch, ended = self.buffer.take(self.spec.batch)
            if ended:
                log.warning("bridge %s: the buffer has room again; %d messages were dropped",
                            self.spec.name, ended)  # fmt: skip
            if batch:
                packed = self._pack(batch, token)
                pending.append((writer.send_packed(packed), packed, len(batch)))
            if pending and (len(pending) >= IN_FLIGHT or not batch):
                if not await self._settle(writer, pending.pop(0), token):
                    return  # fenced: the lease is gone
                continue
            if batch:
                continue
            if subscription.lost.is_set():
                if self._stop.is_set():
                    return
                raise ConnectionError("the subscription connection closed")
            self.wake.clear()
            if not len(self.buffer):
                await self.wake.wait()

    def _pack(self, batch: list[tuple[bytes, bytes]], token: str | None) -> bytes:
        spec = self.spec
        maxlen, with_channel = self._flags
        if token is not None:
            check_key, fencing = self._fence or (self.lease.key, "lease")
            head: list[bytes | str | int] = [
                "EVALSHA", self._script.sha, 2, check_key, spec.stream, token, maxlen,
                with_channel, fencing,
            ]  # fmt: skip
            for channel, payload in batch:
                head += (channel, payload)
            return pack_command(tuple(head))
        window_ms = round(spec.window * 1000)
        head = [
            "EVALSHA", self._script.sha, 2, spec.stream, keys.bridge_seen(spec.stream), window_ms,
            maxlen, with_channel,
        ]  # fmt: skip
        for channel, payload in batch:
            head += (self._dedup_key(payload), channel, payload)
        return pack_command(tuple(head))

    def _dedup_key(self, payload: bytes) -> bytes:
        field = self.spec.dedup_field
        if field is not None:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                value = json.loads(payload)[field]
                return b"f:" + json.dumps(value, sort_keys=True).encode()
        return hashlib.blake2b(payload, digest_size=12).digest()

    async def _settle(
        self,
        writer: RespConnection,
        sent: tuple[asyncio.Future[Any], bytes, int],
        token: str | None,
    ) -> bool:
        """Wait for one batch's reply; False if the leader was fenced off."""
        future, packed, count = sent
        waited = 0.0
        while not future.done():
            try:
                await asyncio.wait_for(asyncio.shield(future), SLOW_WRITE_S)
            except TimeoutError:
                waited += SLOW_WRITE_S
                if waited == SLOW_WRITE_S:
                    self.counts.slow_writes += 1
                    log.warning(
                        "bridge %s: the server has not answered a batch of %d for %.0f s; "
                        "buffering meanwhile (%d of %d)", self.spec.name, count, waited,
                        len(self.buffer), self.spec.buffer,
                    )  # fmt: skip
                if waited >= self.settings.socket_timeout:
                    raise TimeoutError(f"no reply to a batch within {waited:.0f} s") from None
        reply = future.result()
        if is_error(reply) and str(reply).startswith("NOSCRIPT"):
            await writer.call("SCRIPT", "LOAD", self._script.source)
            reply = await writer.call_packed(packed)
        elif is_error(reply):
            raise RedisError(f"bridge {self.spec.name}: {reply}")
        self.counts.batches += 1
        if token is None:
            written, skipped = int(reply[0]), int(reply[1])
            self.counts.written += written
            self.counts.skipped += skipped
            return True
        if int(reply) < 0:
            self.counts.dropped_fenced += count
            self.lease.mark_lost("bridge_write refused our token")
            return False
        self.counts.written += int(reply)
        return True
