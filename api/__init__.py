"""The REST API (FastAPI): billing history, aggregates, quota status, price estimates."""
