"""The domain: usage events, the catalog, account resolution, rating and quota.

Pure functions and plain state objects. Nothing here imports Kafka, Redis,
SQL or HTTP; bytes and sockets live in ``stream/`` and ``sinks/``.
"""
