"""Runtime-defined protobuf schemas: content ids, the Redis registry, the decode cache.

build (define in Python) -> ids (canonical form, content id) -> record -> registry (Redis)
-> cache (per process) ; compat judges a new version against a subject's earlier ones.
"""
