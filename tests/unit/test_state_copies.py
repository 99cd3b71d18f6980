"""A key written under two partitions: every read takes its newest copy, on Faust's RocksDB store
(one DB per partition) and on the memory store after recovery (streams/state.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest

from streams import faust_adapter
from streams.state import StagedTable, VersionClock, newest_items, single_copy, value_of, versioned


class FakeEvent:
    """What Faust's stores read of the current event: its partition (weak-referenceable, as Faust's)."""

    def __init__(self, partition: int, key: Any = None, value: Any = None) -> None:
        self.key, self.value = key, value
        self.message = SimpleNamespace(partition=partition, value=b"" if value is not None else None)


class PartitionedTable(dict[str, Any]):
    """Faust's RocksDB store in miniature: one dict per partition, a write goes to the partition
    of the scope it is made under, iteration yields a key once per partition holding it."""

    def __init__(self, partitions: int) -> None:
        super().__init__()
        self.dbs: list[dict[str, Any]] = [{} for _ in range(partitions)]
        self.current = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.dbs[self.current][key] = value

    def items(self) -> Any:
        return [item for db in self.dbs for item in db.items()]

    def copies(self, order: list[int] | None = None) -> Any:
        dbs = [self.dbs[i] for i in order] if order else self.dbs
        return lambda key: [db[key] for db in dbs if key in db]

    @contextmanager
    def scope(self, partition: int) -> Iterator[None]:
        previous, self.current = self.current, partition
        try:
            yield
        finally:
            self.current = previous


def write(staged: StagedTable, table: PartitionedTable, partition: int, key: str, value: Any) -> None:
    """One batch that changes ``key`` from an event of ``partition``, flushed."""
    with staged.writing_for(partition):
        if value is None:
            del staged[key]
        else:
            staged[key] = value
    staged.flush(table.scope)


def test_the_newest_copy_wins_whatever_order_the_partitions_are_read_in() -> None:
    table = PartitionedTable(3)
    live = StagedTable(table, table.copies())
    write(live, table, 0, "e:X", {"members": ["a"]})  # created by an event of partition 0
    write(live, table, 2, "e:X", {"members": ["a", "b"]})  # merged into by an event of partition 2
    assert "e:X" in table.dbs[0] and "e:X" in table.dbs[2], "one copy in each partition that changed it"
    # A restarted worker: a fresh clock, the partitions found in either order.
    for order in ([0, 1, 2], [2, 1, 0]):
        restarted = StagedTable(table, table.copies(order), VersionClock())
        assert restarted["e:X"] == {"members": ["a", "b"]}
        assert list(restarted) == ["e:X"]
    assert newest_items([*table.dbs[2].items(), *table.dbs[0].items()])["e:X"] == {"members": ["a", "b"]}
    assert newest_items([*table.dbs[0].items(), *table.dbs[2].items()])["e:X"] == {"members": ["a", "b"]}


def test_a_write_supersedes_every_copy_it_read_even_from_a_clock_ahead() -> None:
    table = PartitionedTable(2)
    table.dbs[0]["e:X"] = versioned({"members": ["a"]}, 10**30)  # written by a worker whose clock is ahead
    behind = StagedTable(table, table.copies(), VersionClock(lambda: 5))
    write(behind, table, 1, "e:X", {**behind["e:X"], "members": ["a", "b"]})
    assert StagedTable(table, table.copies())["e:X"] == {"members": ["a", "b"]}


def test_a_deletion_supersedes_the_copies_in_other_partitions() -> None:
    table = PartitionedTable(2)
    staged = StagedTable(table, table.copies())
    write(staged, table, 0, "k:a", {"same": ["b"]})
    write(staged, table, 1, "k:a", None)
    assert StagedTable(table, table.copies()).get("k:a") is None
    assert "k:a" not in newest_items(table.items())


def test_values_stored_before_versions_are_read_as_they_were() -> None:
    staged = StagedTable({"c:a": "X"}, single_copy({"c:a": "X"}))
    assert staged["c:a"] == "X" and value_of("X") == "X"


# ---- on Faust's stores -----------------------------------------------------------------------


def rocksdb_table(datadir: Path) -> Any:
    app = faust.App("state-copies", store="rocksdb://", datadir=str(datadir), autodiscover=False)
    return app.Table("entity-state", default=None, partitions=2, options={"driver": "rocksdict"})


def test_faust_rocksdb_reads_an_older_copy_after_a_restart_and_partition_copies_does_not(tmp_path: Path) -> None:
    table = rocksdb_table(tmp_path)
    for partition, members in ((0, ["a"]), (1, ["a", "b"])):  # written as Faust writes: under the current event
        with faust_adapter.as_current_event(FakeEvent(partition)):
            table.data["e:X"] = versioned({"members": members}, 10 + partition)
    for db in table.data._dbs.values():  # Faust internal: closes the DBs, as a worker stopping does
        db.close()
    restarted = rocksdb_table(tmp_path)
    for partition in (0, 1):  # the partitions assigned again, opened in order
        with faust_adapter.as_current_event(FakeEvent(partition)):
            restarted.data.get("-")
    with faust_adapter.no_current_event():
        faust_read = restarted.get("e:X")
    # The defect this guards against: Faust answers from the first DB that has the key.
    assert faust_read == versioned({"members": ["a"]}, 10)
    copies = faust_adapter.partition_copies(restarted)
    assert sorted(c["version"] for c in copies("e:X")) == [10, 11]
    assert StagedTable(restarted, copies)["e:X"] == {"members": ["a", "b"]}
    assert copies("e:nothing") == []


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_the_memory_store_recovers_the_newest_copy(order: tuple[int, int]) -> None:
    faust_adapter.install_stores()
    app = faust.App("state-copies", store=f"{faust_adapter.NEWEST_COPY_MEMORY_STORE}://", autodiscover=False)
    table = app.Table("entity-state", default=None, partitions=2)
    assert isinstance(table.data, faust_adapter.NewestCopyMemoryStore)
    copies = {0: versioned({"members": ["a"]}, 10), 1: versioned({"members": ["a", "b"]}, 11)}
    batch = [FakeEvent(p, "e:X", copies[p]) for p in order]  # partitions replayed in either order
    table.data.apply_changelog_batch(batch, to_key=lambda k: k, to_value=lambda v: v)
    assert StagedTable(table, faust_adapter.partition_copies(table))["e:X"] == {"members": ["a", "b"]}
    assert table.data._key_partition["e:X"] == 1  # Faust internal: the kept copy's partition
