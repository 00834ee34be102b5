"""store/leases.py: one holder at a time, renewed by its holder, taken over once stale; a dead holder's lease
freed at once; the keeper thread; the owner id's checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from workbench.store import open_store
from workbench.store.leases import LeaseKeeper, lease_name, new_owner, owner_gone


def test_a_gone_holder_is_freed_and_a_live_one_kept(tmp_path):
    store = open_store(tmp_path / "wb.db")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process now
    dead = f"{socket.gethostname()}:{child.pid}:0000"
    assert store.acquire_lease("dispatcher", dead, ttl=60)
    assert owner_gone(dead)
    assert store.live_lease_holder("dispatcher") is None
    assert store.lease_holder("dispatcher") is None  # freed, not only reported
    mine = new_owner()
    assert not owner_gone(mine) and mine.split(":")[1] == str(os.getpid())
    assert store.acquire_lease(lease_name("r1"), mine, ttl=60)
    assert store.live_lease_holder(lease_name("r1")) == mine
    elsewhere = "another-host:1:0000"  # a process on another machine is never judged from here
    assert store.acquire_lease("watcher", elsewhere, ttl=60)
    assert store.live_lease_holder("watcher") == elsewhere


def test_the_keeper_renews_every_name_it_holds_and_says_when_one_is_lost(tmp_path):
    store = open_store(tmp_path / "wb.db")
    names: list[str] = []
    keeper = LeaseKeeper(store, names, "a", ttl=0.3, every=0.05)
    try:
        for name in ("x", "y"):
            assert store.acquire_lease(name, "a", ttl=0.3)
            names.append(name)  # a group launch adds runs while it works
        keeper._stop.wait(0.6)  # twice the ttl: held only because it is renewed
        assert store.lease_holder("x") == "a" and store.lease_holder("y") == "a"
        store.release_lease("y", "a")
        assert store.acquire_lease("y", "b", ttl=60)
        assert keeper.lost.wait(2)
    finally:
        keeper.stop()


def test_leases_exclude_and_expire(tmp_path):
    store = open_store(tmp_path / "wb.db")
    assert store.acquire_lease("ingest:r", "a", ttl=0.3)
    assert not store.acquire_lease("ingest:r", "b", ttl=0.3)
    assert store.acquire_lease("ingest:r", "a", ttl=0.3)  # renewal
    time.sleep(0.4)
    assert store.acquire_lease("ingest:r", "b", ttl=5)  # stale: taken over
    store.release_lease("ingest:r", "a")  # a no longer owns it: no effect
    assert store.lease_holder("ingest:r") == "b"
