"""Finding input offsets a worker was handed past but never got."""

from __future__ import annotations

from streams.recovery import OffsetGaps


def test_offset_gaps_are_found_once_and_rewound() -> None:
    gaps = OffsetGaps()

    def committed(topic: str, partition: int) -> int | None:
        return {0: 10}.get(partition)

    # Partition 0 resumes at 10 and is contiguous; partition 1 has no commit yet.
    assert gaps.observe([("t", 0, 10), ("t", 0, 11), ("t", 1, 5)], committed) == []
    # 12..14 were skipped on partition 0.
    assert gaps.observe([("t", 0, 15), ("t", 0, 16), ("t", 1, 6)], committed) == [("t", 0, 12)]
    # Messages fetched before the seek drain without raising the same gap again...
    assert gaps.observe([("t", 0, 17)], committed) == []
    # ...until the rewound offset arrives; then tracking resumes from there.
    assert gaps.observe([("t", 0, 12), ("t", 0, 13)], committed) == []
    assert gaps.observe([("t", 0, 20)], committed) == [("t", 0, 14)]
    # A first message past the committed offset is a gap too.
    fresh = OffsetGaps()
    assert fresh.observe([("t", 0, 13)], committed) == [("t", 0, 10)]


def test_a_rewind_that_does_not_come_back_is_retried() -> None:
    now = [0.0]
    gaps = OffsetGaps(clock=lambda: now[0])
    assert gaps.observe([("t", 0, 5), ("t", 0, 9)], lambda _t, _p: None) == [("t", 0, 6)]
    assert gaps.overdue(after_s=3.0) == []
    now[0] = 3.5
    assert gaps.overdue(after_s=3.0) == [("t", 0, 6)]
    assert gaps.overdue(after_s=3.0) == [], "not again until another interval has passed"
    gaps.observe([("t", 0, 6)], lambda _t, _p: None)
    now[0] = 10.0
    assert gaps.overdue(after_s=3.0) == [], "the rewind is done once the first missing offset came back"


def test_progress_watch_tells_a_stall_from_idle_and_from_an_outage() -> None:
    from streams.recovery import ProgressWatch

    now = [0.0]
    watch = ProgressWatch(stall_after_s=30.0, clock=lambda: now[0])
    assert watch.check(batches=5, lag=100, waiting_on_dependency=False) == 0.0
    now[0] = 29.0
    assert watch.check(batches=5, lag=100, waiting_on_dependency=False) == 0.0  # not yet
    now[0] = 31.0
    assert watch.check(batches=5, lag=100, waiting_on_dependency=False) == 31.0  # input waits, nothing decided
    now[0] = 40.0
    assert watch.check(batches=6, lag=100, waiting_on_dependency=False) == 0.0  # a batch was decided
    now[0] = 80.0
    assert watch.check(batches=6, lag=0, waiting_on_dependency=False) == 0.0  # idle: nothing waiting
    now[0] = 120.0
    assert watch.check(batches=6, lag=10, waiting_on_dependency=True) == 0.0  # holding for Triton or Milvus
    now[0] = 160.0
    assert watch.check(batches=6, lag=10, waiting_on_dependency=False) == 40.0
