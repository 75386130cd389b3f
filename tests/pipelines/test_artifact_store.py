"""Artifact store: round trips, atomic publication, checksum verification, eviction."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from pipelines.artifact_store import MANIFEST, ArtifactCorruptError, ArtifactStore, write_part
from pipelines.errors import PipelineError


def fp(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


ROWS = [{"id": i, "x": i * 0.5, "s": f"r{i}", "n": None if i % 3 == 0 else i} for i in range(100)]


def test_rows_and_values_round_trip(tmp_path):
    store = ArtifactStore(tmp_path)
    m = store.write_rows(fp("a"), ROWS, node="a")
    assert m.rows == 100 and m.size_bytes > 0 and m.node == "a"
    assert store.read_rows(fp("a")) == ROWS
    value = {"weights": [1.5, 2.5], "blessed": True}
    store.write_value(fp("v"), value)
    assert store.read_value(fp("v")) == value
    assert store.verify(fp("a")) is not None
    assert store.total_bytes() == m.size_bytes + store.manifest(fp("v")).size_bytes


def test_staged_artifact_is_invisible_until_published(tmp_path):
    store = ArtifactStore(tmp_path)
    staging = store.staging_dir(fp("b"))
    parts = [write_part(staging, ROWS[:50]), write_part(staging, ROWS[50:])]
    assert store.verify(fp("b")) is None and store.entries() == []
    store.finalize(fp("b"), staging, parts, node="b")
    assert not staging.exists()
    assert sorted(store.read_rows(fp("b")), key=lambda r: r["id"]) == ROWS
    # publishing the same fingerprint again keeps the complete copy
    again = store.staging_dir(fp("b"))
    store.finalize(fp("b"), again, [write_part(again, ROWS[:1])])
    assert len(store.read_rows(fp("b"))) == 100


def test_empty_collection_is_stored_as_empty(tmp_path):
    store = ArtifactStore(tmp_path)
    staging = store.staging_dir(fp("e"))
    store.finalize(fp("e"), staging, [])
    assert store.read_rows(fp("e")) == []


def test_corrupt_part_fails_verification_and_is_quarantined(tmp_path):
    store = ArtifactStore(tmp_path)
    m = store.write_rows(fp("c"), ROWS)
    part = store.path(fp("c")) / m.parts[0].name
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorruptError, match="checksum"):
        store.read_rows(fp("c"))
    assert store.verify(fp("c")) is None
    assert not store.path(fp("c")).exists()


def test_missing_part_or_manifest_counts_as_absent(tmp_path):
    store = ArtifactStore(tmp_path)
    m = store.write_rows(fp("d"), ROWS)
    os.remove(store.path(fp("d")) / m.parts[0].name)
    assert store.verify(fp("d")) is None
    store.write_rows(fp("f"), ROWS)
    (store.path(fp("f")) / MANIFEST).write_text("{not json")
    assert store.verify(fp("f")) is None
    assert store.verify(fp("never")) is None


def test_eviction_keeps_store_within_budget_lru_first(tmp_path):
    store = ArtifactStore(tmp_path)
    sizes = {}
    for i, name in enumerate(["old", "mid", "new"]):
        sizes[name] = store.write_rows(fp(name), ROWS * (i + 1)).size_bytes
        os.utime(store.path(fp(name)) / MANIFEST, (time.time() - 100 + i, time.time() - 100 + i))
    store.touch(fp("old"))  # used just now: most recent
    budget = sizes["old"] + sizes["new"]
    evicted = store.evict(budget)
    assert evicted == [fp("mid")]
    assert store.total_bytes() <= budget
    assert store.evict(budget) == []


def test_eviction_follows_the_chooser_then_lru(tmp_path):
    store = ArtifactStore(tmp_path)
    for name in ["a", "b", "c"]:
        store.write_rows(fp(name), ROWS)
    total = store.total_bytes()
    evicted = store.evict(total - 1, choose=lambda entries, budget: [fp("c")])
    assert evicted == [fp("c")]
    assert {e.key for e in store.entries()} == {fp("a"), fp("b")}
    assert store.evict(0) and store.entries() == []


def test_invalid_fingerprint_is_rejected(tmp_path):
    with pytest.raises(PipelineError, match="invalid fingerprint"):
        ArtifactStore(tmp_path).path("../etc")
