"""Leases: one holder at a time, renewed by its holder, taken over once stale."""

from __future__ import annotations

import time

from workbench.store import open_store


def test_leases_exclude_and_expire(tmp_path):
    store = open_store(tmp_path / "wb.db")
    assert store.acquire_lease("ingest:r", "a", ttl=0.3)
    assert not store.acquire_lease("ingest:r", "b", ttl=0.3)
    assert store.acquire_lease("ingest:r", "a", ttl=0.3)  # renewal
    time.sleep(0.4)
    assert store.acquire_lease("ingest:r", "b", ttl=5)  # stale: taken over
    store.release_lease("ingest:r", "a")  # a no longer owns it: no effect
    assert store.lease_holder("ingest:r") == "b"
