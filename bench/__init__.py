"""Throughput benchmark: exactly-once rating against a pass-through loop and a faust agent.

Entry point: ``python -m bench.run`` (``make bench``). Method and latest results:
bench/README.md.
"""
