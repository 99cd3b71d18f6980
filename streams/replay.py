"""The decisions topic as the source of truth: rebuilding the entity state by replaying it, and
comparing the result with a worker's live state (its ``/state`` view)."""

from __future__ import annotations

import csv
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolution.entities import cluster_rows, rebuild_state, state_differences
from settings import Settings
from streams.kafka import read_topic
from streams.topics import Schemas
from streams.web_access import bearer_headers, client_host


def decision_records(settings: Settings) -> list[dict[str, Any]]:
    schema = Schemas.load().decision
    return [schema.decode(r.value) for r in read_topic(settings.kafka, settings.kafka.decisions_topic)]


def worker_url(settings: Settings) -> str:
    return f"http://{client_host(settings.worker.web_host)}:{settings.worker.web_port}"


def fetch_json(url: str, timeout_s: float = 30.0, token: str = "") -> Any:
    """GETs a worker view; ``token`` is the worker's web token for the entity views, if it asks."""
    request = urllib.request.Request(url, headers=bearer_headers(token))
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        return json.load(resp)


@dataclass
class RebuildReport:
    decisions: int
    rebuilt_keys: int
    live_keys: int
    entities: int
    differing: int
    examples: list[str]


def rebuild_and_compare(settings: Settings, url: str | None = None) -> RebuildReport:
    records = decision_records(settings)
    rebuilt = rebuild_state(records)
    live = fetch_json(f"{url or worker_url(settings)}/state", token=settings.worker.web_token)
    differing, examples = state_differences(live, rebuilt)
    entities = sum(1 for k, v in rebuilt.items() if k.startswith("e:") and v["members"])
    return RebuildReport(len(records), len(rebuilt), len(live), entities, differing, examples)


CLUSTER_COLUMNS = ("content_id", "entity_id", "work_id")


def write_clusters(path: Path, rows: list[tuple[str, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CLUSTER_COLUMNS)
        writer.writerows(rows)


def read_clusters(path: Path) -> list[tuple[str, str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [(r["content_id"], r["entity_id"], r["work_id"]) for r in csv.DictReader(f)]


def export_clusters(settings: Settings, path: Path) -> int:
    """The clustering the decisions topic implies (replayed, corrections applied) as CSV; rows written."""
    rows = cluster_rows(rebuild_state(decision_records(settings)))
    write_clusters(path, rows)
    return len(rows)
