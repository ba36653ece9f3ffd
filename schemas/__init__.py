"""The Avro schemas (``*.avsc``) of every topic: the public contract, shipped as package data."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
