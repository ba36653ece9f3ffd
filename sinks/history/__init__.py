"""The billing history: every rated record in SQLite or PostgreSQL (see model.py)."""
