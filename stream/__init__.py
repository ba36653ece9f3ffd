"""The Kafka edge: settings, clients, serde, topics, the exactly-once batch loop."""
