"""Kafka side of the resolver: topics and schemas, the Faust app, producers and readers."""
