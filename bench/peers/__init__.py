"""The systems gristmill is compared with, each a script run as its own process.

Each takes `--url --input --output --group --schema-id` (the output's schema id), consumes
`--input` from its beginning with a consumer group, and writes one output entry per input
entry until it is stopped with SIGTERM. The faststream and arq scripts run in their own
virtualenvs (see bench/venvs.py) and import only protobuf, hiredis and their framework.
"""
