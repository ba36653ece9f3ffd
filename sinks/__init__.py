"""Stores behind one small contract: write a batch with its offsets atomically,
report the last stored offsets (see sinks/base.py)."""
