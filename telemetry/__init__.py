"""OpenTelemetry set-up and W3C trace context carried in Kafka headers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()


def tracer_provider(service_name: str, otlp_endpoint: str) -> TracerProvider:
    """A provider exporting over OTLP gRPC; the caller owns it (and shuts it down)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=otlp_endpoint.startswith("http://"))
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    return provider


def inject_headers(ctx: otel_context.Context | None = None) -> list[tuple[str, bytes]]:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=ctx)
    return [(k, v.encode()) for k, v in carrier.items()]


def extract_context(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> otel_context.Context:
    carrier: dict[str, str] = {}
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    for key, value in items:
        k = key.decode() if isinstance(key, bytes) else str(key)
        carrier[k.lower()] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return PROPAGATOR.extract(carrier)


def trace_id_hex(span: trace.Span) -> str:
    return format(span.get_span_context().trace_id, "032x")
