"""The worker's web views: ``/metrics``, ``/state``, ``/health``, ``/entity/<id>``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import faust
from faust.web import Request, Response, View

from resolution.entities import EntityStore
from streams.metrics import ResolverMetrics
from streams.state import Copies, StagedTable, newest_items
from streams.status import WorkerStatus
from streams.web_access import WebAccess

HealthCheck = Callable[[], Awaitable[dict[str, Any]]]


def register_views(
    app: faust.App,
    metrics: ResolverMetrics,
    table: MutableMapping[str, Any],
    copies: Copies,
    status: WorkerStatus,
    health: HealthCheck | None,
    access: WebAccess,
) -> None:
    """``/state`` and ``/entity`` show catalogue data: they ask for the web token (``access``).
    Both show the newest copy of each key (``copies``: every partition's copy of a key)."""

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(metrics.exposition(), content_type="text/plain; version=0.0.4")

    @app.page("/state")
    class State(View):
        """The whole entity state of this worker (for audits and the replay check); not for hot paths."""

        async def get(self, request: Request) -> Response:
            if not access.allows(request.headers.get("Authorization")):
                return _unauthorized(self)
            state = newest_items(table.items())  # a key once per partition holding it: the newest
            body = {str(key): value for key, value in state.items() if not str(key).startswith("o:")}
            return self.json(body)

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            live = await health() if health is not None else {"healthy": True}
            healthy = bool(live.get("healthy")) and status.healthy
            metrics.healthy.set(1 if healthy else 0)
            body = {**live, **status.as_dict(), "healthy": healthy}
            return self.json(body, status=200 if healthy else 503)

    @app.page("/entity/{entity_id}")
    class Entity(View):
        async def get(self, request: Request, entity_id: str) -> Response:
            if not access.allows(request.headers.get("Authorization")):
                return _unauthorized(self)
            # Read only: nothing is staged, so nothing is ever flushed from here.
            record = EntityStore(StagedTable(table, copies)).describe(entity_id)
            if record is None:
                return self.json({"error": f"unknown entity {entity_id}"}, status=404)
            return self.text(json.dumps(record, indent=2), content_type="application/json")


def _unauthorized(view: View) -> Response:
    return view.json(
        {"error": "this view asks for the worker's web token (Authorization: Bearer ...)"},
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
    )
