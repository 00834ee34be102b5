"""What an ingestor commits (store/ingest.py): a batch of metric points and the offset it read to, together or
not at all."""

from __future__ import annotations

import time

from workbench.store import open_store
from workbench.store.ingest import MetricBatch, Offset


def test_metrics_and_offset_commit_together(tmp_path):
    store = open_store(tmp_path / "wb.db")
    seq = store.insert_run({"id": "r1", "project": "p", "project_path": "/p", "experiment": "e",
                            "status": "running", "machine": "local", "executor": "process",
                            "created_at": time.time()})
    loss = store.key_id("loss")
    batch = MetricBatch([(loss, 0, 1.0, 0.5), (loss, 1, 1.0, None)], 1, 0, {"loss": "NaN"})
    store.commit_metrics(seq, batch, Offset("120", 3, 0))
    assert store.get_offset(seq, "metrics") == Offset("120", 3, 0)
    history = store.metric_history(seq, "loss", with_ts=True)
    assert history[0] == (0, 1.0, 0.5) and history[1][2] != history[1][2]  # NaN comes back as NaN
    assert store.metric_history(seq, "loss")[0] == (0, 0.5)
    try:  # a failing transaction leaves both untouched
        with store.tx() as conn:
            store.commit_metrics(seq, MetricBatch([(loss, 2, 1.0, 0.1)], 0, 0, {}), Offset("200", 4, 0))
            raise RuntimeError("crash")
    except RuntimeError:
        pass
    assert store.get_offset(seq, "metrics").offset == "120"
    assert len(store.metric_history(seq, "loss")) == 2
