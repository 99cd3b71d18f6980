"""The real Jaeger UI, driven by headless Chromium, shows a decision's trace with every resolver stage.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it where missing); without it the test
skips and says so. The spans' attributes are checked through Jaeger's API beside the page."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from resolution.model import ContentItem
from tests.integration.streaming import jaeger_trace, produce, wait_decisions

pytestmark = pytest.mark.integration

STAGES = ("produce content-event", "resolve", "consume", "normalise", "embed", "search", "score", "decide", "produce")
PLACEHOLDER = "This is not the Jaeger UI you are looking for"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("headless Chromium is not installed: apt-get install -y chromium (.ci/run does it where missing)")
    return found


def browse(exe: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # Its own profile folder: parallel test workers must not share one. Root needs --no-sandbox.
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}"]
    cmd += ["--virtual-time-budget=20000", "--window-size=1400,900", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_trace_page_of_a_decision_shows_the_resolver_stages(worker, tmp_path: Path) -> None:
    exe = chromium()
    settings = worker.settings
    one = ContentItem(
        event_id="ev-ui",
        content_id="ui:1",
        source="store-a",
        kind="recording",
        title="Copper Kettle Morning",
        artists=("June Ashdown",),
        duration_ms=198_000,
    )
    produce(settings, [one])
    decision = wait_decisions(settings, {"ev-ui"})["ev-ui"][0]
    trace = jaeger_trace(settings, decision["trace_id"], want_spans=10)
    assert trace is not None, "Jaeger returned no trace"

    # What a person looks for in the UI is on the spans.
    by_name = {s["operationName"]: {t["key"]: t["value"] for t in s["tags"]} for s in trace["spans"]}
    resolve = by_name["resolve"]
    assert resolve["resolver.action"] == decision["action"]
    assert resolve["resolver.entity_id"] == decision["entity_id"]
    assert resolve["resolver.confidence"] == pytest.approx(decision["confidence"])
    assert resolve["resolver.model_version"] == decision["model_version"]
    for name, operation in (("produce content-event", "send"), ("consume", "receive"), ("produce", "send")):
        tags = by_name[name]
        assert tags["messaging.system"] == "kafka" and tags["messaging.operation.type"] == operation, (name, tags)
    assert by_name["consume"]["messaging.destination.name"] == settings.kafka.content_topic
    assert by_name["produce"]["messaging.destination.name"] == settings.kafka.decisions_topic

    url = f"{settings.worker.jaeger_query_url}/trace/{decision['trace_id']}"
    page = browse(exe, url, tmp_path / "profile", "--dump-dom")
    assert page.returncode == 0, page.stderr[-2000:]
    assert PLACEHOLDER not in page.stdout, (
        "Jaeger serves its placeholder page, not the UI: `resolver stack fetch`, then restart Jaeger"
        " (`resolver stack down --only jaeger && resolver stack up --only jaeger`)"
    )
    assert "Trace Timeline" in page.stdout or "Trace Start" in page.stdout, page.stdout[-2000:]
    missing = [stage for stage in STAGES if f">{stage}<" not in page.stdout]
    assert not missing, f"stages not on the trace page: {missing}"

    shot = Path(os.environ.get("RESOLVER_TEST_SCREENSHOT", tmp_path / "trace.png"))
    taken = browse(exe, url, tmp_path / "profile", f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    print(f"[jaeger-ui] {url} -> {shot}")
