"""Errors the resolution core and its clients share."""


class DependencyUnavailable(RuntimeError):
    """A service the resolver needs (Triton, Milvus, Kafka) did not answer within its retry budget.

    The worker keeps the batch, reports degraded health and tries again: nothing is dropped."""

    dependency = "unknown"
