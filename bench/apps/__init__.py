"""The gristmill apps the benchmark serves with `runtime serve`, and their stream names.

The hand loops and FastStream read and write the same stream names, so every system of a
scenario faces the same keys on the same server.
"""

PASSTHROUGH_STREAMS = ("bench-orders", "bench-invoices")
PIPELINE_STREAMS = ("bench-orders", "bench-invoices", "bench-taxed", "bench-billed")
