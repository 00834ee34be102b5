"""The reads services make of the history through named Store methods (no SQL outside workbench/store)."""

from __future__ import annotations

import time

from workbench.store import open_store


def _run(store, run_id, image_id=None, experiment="e"):
    store.insert_run({"id": run_id, "project": "p", "project_path": "/p", "experiment": experiment,
                      "status": "succeeded", "machine": "local", "executor": "docker", "created_at": time.time(),
                      "image_id": image_id})


def test_images_runs_recorded(tmp_path):
    store = open_store(tmp_path / "wb.db")
    assert store.recorded_image_ids() == set() and store.run_images() == []
    _run(store, "r1", "sha256:aa")
    _run(store, "r2")
    _run(store, "r3", "sha256:bb", experiment="f")
    _run(store, "r4", "sha256:aa")
    assert store.recorded_image_ids() == {"sha256:aa", "sha256:bb"}
    assert store.run_images() == [("r1", "p", "e", "sha256:aa"), ("r3", "p", "f", "sha256:bb"),
                                  ("r4", "p", "e", "sha256:aa")]  # oldest first: the last per experiment is newest
    assert store.run_exists("r2") and not store.run_exists("r5")


def test_events_asked_of_every_run(tmp_path):
    store = open_store(tmp_path / "wb.db")
    store.add_event("r1", "warning", "install the CPU wheel")
    store.add_event("r1", "image", "image demo:1 sha256:aa: 10 bytes")
    store.add_event("r2", "image", "image demo:2 sha256:aa: 12 bytes")
    store.add_event("r2", "warning", "image demo:3 sha256:cc: 14 bytes")
    assert store.warning_recorded("install the CPU wheel") and not store.warning_recorded("install the")
    assert store.last_event_containing("image", " sha256:aa: ")["message"].endswith("12 bytes")  # the newest
    assert store.last_event_containing("image", " sha256:cc: ") is None  # of that kind only
    assert store.last_event_containing("image", " SHA256:AA: ") is None  # exactly as written
