"""Encoders, the Triton client, and matcher training."""
