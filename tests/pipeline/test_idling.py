"""How long a processor's reads block (pure): the usual `block_ms` while entries come, longer
once it found nothing a few times in a row, never past a quarter of the claim idle time."""

from __future__ import annotations

from gristmill.pipeline.consume import IDLE_BLOCK_MAX_MS, IDLE_READS, Idling


def test_a_processor_blocks_longer_after_empty_reads_and_not_after_entries() -> None:
    idling = Idling(block_ms=1000, claim_idle_ms=30_000)
    assert idling.idle_block_ms == min(IDLE_BLOCK_MAX_MS, 7500)
    for _ in range(IDLE_READS - 1):
        idling.read(0)
        assert not idling.idle
    idling.read(0)
    assert idling.idle
    idling.read(5)  # entries came: the next read blocks the usual time again
    assert not idling.idle


def test_the_idle_block_never_delays_reclaim_past_a_quarter_of_the_claim_idle_time() -> None:
    assert Idling(block_ms=1000, claim_idle_ms=8_000).idle_block_ms == 2000
    assert Idling(block_ms=1000, claim_idle_ms=600_000).idle_block_ms == IDLE_BLOCK_MAX_MS
    # a claim idle time short against block_ms: never below block_ms itself
    assert Idling(block_ms=1000, claim_idle_ms=1_000).idle_block_ms == 1000
