"""Licences: subscription state, fiscal years, proration and billing runs (pure, no Kafka)."""
