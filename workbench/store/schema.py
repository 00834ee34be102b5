"""Schema migrations, applied in order; PRAGMA user_version records how many have run.

A migration is an SQL script, or a function of the connection where SQL alone cannot say it."""

from __future__ import annotations

import json
import sqlite3
from typing import Callable

from workbench.redaction import redact_run_fields


def _links_and_redacted_history(conn: sqlite3.Connection) -> None:
    """Artifacts that are symbolic links are recorded as links (their target, never followed); secrets
    that older versions kept in a run's spec environment (or missed in its environment) are redacted."""
    conn.execute("PRAGMA secure_delete = ON")  # the old values' pages are overwritten, not just freed
    conn.execute("ALTER TABLE artifacts ADD COLUMN link TEXT")
    rows = conn.execute("SELECT seq, env, spec FROM runs").fetchall()
    for seq, env, spec in rows:
        try:
            fields = {"env": json.loads(env), "spec": json.loads(spec)}
        except (TypeError, ValueError):
            continue
        clean = redact_run_fields(fields)
        if clean != fields:
            conn.execute("UPDATE runs SET env = ?, spec = ? WHERE seq = ?",
                         (json.dumps(clean["env"]), json.dumps(clean["spec"]), seq))

MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    # 1: the core engine
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE projects (
        name TEXT PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at REAL NOT NULL
    );

    CREATE TABLE machines (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        address TEXT,
        config TEXT NOT NULL DEFAULT '{}',
        added_at REAL NOT NULL
    );

    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        project TEXT NOT NULL,
        project_path TEXT NOT NULL,
        experiment TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        machine TEXT NOT NULL,
        executor TEXT NOT NULL,
        handle TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        exit_code INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        params TEXT NOT NULL DEFAULT '{}',
        argv TEXT NOT NULL DEFAULT '[]',
        env TEXT NOT NULL DEFAULT '{}',
        image TEXT,
        image_id TEXT,
        snapshot TEXT,
        git_commit TEXT,
        git_dirty INTEGER,
        git_diff TEXT,
        gpu_uuids TEXT NOT NULL DEFAULT '[]',
        gpu_model TEXT,
        driver TEXT,
        spec TEXT NOT NULL DEFAULT '{}',
        summary TEXT NOT NULL DEFAULT '{}',
        metric_points INTEGER NOT NULL DEFAULT 0,
        bad_metric_lines INTEGER NOT NULL DEFAULT 0,
        bad_metric_values INTEGER NOT NULL DEFAULT 0,
        rerun_of TEXT
    );
    CREATE INDEX runs_by_created ON runs (created_at DESC, seq DESC);
    CREATE INDEX runs_by_status ON runs (status) WHERE status IN ('queued', 'running');
    CREATE INDEX runs_by_project ON runs (project, created_at DESC);

    CREATE TABLE params (
        run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_seq, name)
    ) WITHOUT ROWID;

    CREATE TABLE metric_keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);

    CREATE TABLE metrics (
        run_seq INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        step INTEGER NOT NULL,
        ts REAL NOT NULL,
        value REAL
    );
    CREATE INDEX metrics_history ON metrics (run_seq, key_id, step);

    CREATE TABLE artifacts (
        run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (run_seq, path)
    ) WITHOUT ROWID;

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        run_id TEXT,
        kind TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX events_by_run ON events (run_id, id);

    CREATE TABLE ingest_offsets (
        run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        stream TEXT NOT NULL,
        offset TEXT NOT NULL,
        lines INTEGER NOT NULL DEFAULT 0,
        local_size INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_seq, stream)
    ) WITHOUT ROWID;

    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: the status filters of the Runs and Dashboard screens, newest first, without a scan
    """
    DROP INDEX runs_by_status;
    CREATE INDEX runs_by_status ON runs (status, created_at DESC);
    """,
    # 3: GPU telemetry history: 1 s samples for the last hour, 1 min averages for a month
    """
    CREATE TABLE telemetry (
        machine TEXT NOT NULL,
        gpu INTEGER NOT NULL,
        ts REAL NOT NULL,
        resolution INTEGER NOT NULL,
        utilization REAL,
        memory_used REAL,
        temperature REAL,
        power REAL,
        PRIMARY KEY (machine, gpu, resolution, ts)
    ) WITHOUT ROWID;
    """,
    # 4: metric checks per run (GradientCI-style verdicts)
    """
    ALTER TABLE runs ADD COLUMN verdict TEXT;
    CREATE TABLE checks (
        run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        metric TEXT NOT NULL,
        expression TEXT NOT NULL,
        value REAL,
        passed INTEGER NOT NULL,
        PRIMARY KEY (run_seq, metric)
    ) WITHOUT ROWID;
    """,
    # 5: artifact links; secrets redacted in every stored environment
    _links_and_redacted_history,
    # 6: the job runner. A run waiting in the queue keeps its placement request in `waiting` (NULL once
    # placed); `placement` keeps the request and the choice with its reason. GPUs are reserved per
    # (machine, uuid) by at most one run, in the transaction that places it; its end releases them.
    # `hourly_cost` and `gpu_share` (GPUs held / GPUs there; 1 for a CPU run) price the run.
    """
    ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN waiting TEXT;
    ALTER TABLE runs ADD COLUMN placement TEXT;
    ALTER TABLE runs ADD COLUMN hourly_cost REAL;
    ALTER TABLE runs ADD COLUMN gpu_share REAL;
    CREATE INDEX runs_waiting ON runs (priority DESC, seq) WHERE waiting IS NOT NULL;
    CREATE TABLE gpu_reservations (
        machine TEXT NOT NULL,
        uuid TEXT NOT NULL,
        run_id TEXT NOT NULL,
        reserved_at REAL NOT NULL,
        PRIMARY KEY (machine, uuid)
    ) WITHOUT ROWID;
    CREATE INDEX gpu_reservations_by_run ON gpu_reservations (run_id);
    INSERT OR IGNORE INTO gpu_reservations (machine, uuid, run_id, reserved_at)
        SELECT runs.machine, j.value, runs.id, runs.created_at FROM runs, json_each(runs.gpu_uuids) AS j
        WHERE runs.status IN ('queued', 'running');
    """,
    # 7: sweeps. A sweep's trials are runs carrying its id and their trial number, unique per sweep (a
    # trial is never recorded twice, whichever dispatcher asks for it).
    """
    CREATE TABLE sweeps (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        project_path TEXT NOT NULL,
        experiment TEXT NOT NULL,
        method TEXT NOT NULL,
        space TEXT NOT NULL,
        options TEXT NOT NULL,
        base_params TEXT NOT NULL,
        request TEXT NOT NULL,
        experiment_spec TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        status_reason TEXT,
        created_at REAL NOT NULL,
        finished_at REAL
    );
    ALTER TABLE runs ADD COLUMN sweep_id TEXT;
    ALTER TABLE runs ADD COLUMN trial INTEGER;
    CREATE UNIQUE INDEX runs_sweep_trial ON runs (sweep_id, trial) WHERE sweep_id IS NOT NULL;
    """,
    # 8: each run's metric keys with their count, extremes and step range, kept by every commit of points:
    # names, stats and charts' axes without scanning a million points (comparing runs reads only these and a
    # few index seeks per curve)
    """
    CREATE TABLE metric_stats (
        run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        key_id INTEGER NOT NULL,
        points INTEGER NOT NULL,
        vmin REAL,
        vmax REAL,
        first_step INTEGER NOT NULL,
        last_step INTEGER NOT NULL,
        PRIMARY KEY (run_seq, key_id)
    ) WITHOUT ROWID;
    INSERT INTO metric_stats (run_seq, key_id, points, vmin, vmax, first_step, last_step)
        SELECT run_seq, key_id, count(*), min(value), max(value), min(step), max(step) FROM metrics
        GROUP BY run_seq, key_id;
    """,
    # 9: the model registry (versions content-addressed by sha256, with lineage copied from the run so it
    # outlives the run; aliases; an append-only alias history) and deployments (one per name: its stable
    # endpoint; the containers that served each version; every switch and health result as an event)
    """
    CREATE TABLE model_versions (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        filename TEXT NOT NULL,
        run_id TEXT NOT NULL,
        artifact TEXT NOT NULL,
        lineage TEXT NOT NULL,
        forced INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        PRIMARY KEY (name, version)
    ) WITHOUT ROWID;
    CREATE TABLE model_aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version INTEGER NOT NULL,
        set_at REAL NOT NULL,
        PRIMARY KEY (name, alias)
    ) WITHOUT ROWID;
    CREATE TABLE model_alias_history (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version INTEGER NOT NULL,
        previous INTEGER,
        who TEXT NOT NULL
    );
    CREATE TABLE deployments (
        name TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        machine TEXT NOT NULL,
        port INTEGER NOT NULL,
        proxy TEXT,
        live_version INTEGER,
        live_container TEXT,
        status TEXT NOT NULL,
        status_reason TEXT,
        health TEXT,
        health_at REAL,
        operation TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE deployment_targets (
        deployment TEXT NOT NULL REFERENCES deployments (name) ON DELETE CASCADE,
        container TEXT NOT NULL,
        version INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        snapshot TEXT,
        gpu_uuids TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        state_at REAL NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (deployment, container)
    ) WITHOUT ROWID;
    CREATE TABLE deployment_events (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        deployment TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_version INTEGER,
        to_version INTEGER,
        health TEXT,
        message TEXT NOT NULL
    );
    CREATE INDEX deployment_events_by_name ON deployment_events (deployment, id);
    """,
    # 10: what the last `squeue` of each Slurm machine said, shared by every Workbench process (one call per
    # poll interval per cluster, however many runs and followers look)
    """
    CREATE TABLE slurm_polls (
        machine TEXT PRIMARY KEY,
        polled_at REAL NOT NULL,
        jobs TEXT NOT NULL,
        calls INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    """,
    # 11: deployments you can leave alone: the address the endpoint listens on and whether it asks for a token;
    # a canary under way (JSON: its version, container, share, window, threshold, the counters it started
    # from); the proxy's counters at the last switch ("since the switch"); the proxy's address on the
    # deployment network, as last seen (its metrics are read there with no engine call); how to start each version again
    # (JSON: image, command, env ... so a rollback after --stop-first recreates it); the watcher's samples of
    # the proxy's counters (a few minutes of them: "the last minute")
    """
    ALTER TABLE deployments ADD COLUMN bind TEXT NOT NULL DEFAULT '0.0.0.0';
    ALTER TABLE deployments ADD COLUMN auth TEXT NOT NULL DEFAULT 'none';
    ALTER TABLE deployments ADD COLUMN canary TEXT;
    ALTER TABLE deployments ADD COLUMN traffic_baseline TEXT;
    ALTER TABLE deployments ADD COLUMN proxy_address TEXT;
    ALTER TABLE deployment_targets ADD COLUMN launch TEXT;
    CREATE TABLE deployment_traffic (
        deployment TEXT NOT NULL,
        ts REAL NOT NULL,
        counters TEXT NOT NULL,
        PRIMARY KEY (deployment, ts)
    ) WITHOUT ROWID;
    """,
    # 12: the ended runs by when they ended (the Dashboard's Recent results, asked every second: a full scan
    # took ~50-100 ms on 100k runs)
    """
    CREATE INDEX runs_by_finish ON runs (coalesce(finished_at, created_at) DESC, seq DESC)
        WHERE status NOT IN ('queued', 'running');
    """,
    # 13: what a run is: 'run' (an experiment) or 'session' (JupyterLab on the project's working copy, placed,
    # pinned and costed like a run)
    """
    ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run';
    CREATE INDEX runs_sessions ON runs (created_at DESC) WHERE kind = 'session';
    """,
    # 14: CI on commits: each commit of a followed branch seen (run, or skipped in a burst), keyed by the project
    # folder and experiment; its tree, so a commit with the same tree reuses a verdict (bisect); the branches
    # followed (one follower each, by lease `ci:<project>:<branch>`), whether detached (resumed after a reboot)
    # and still wanted (`ci stop` clears it)
    """
    CREATE TABLE ci_commits (
        project_path TEXT NOT NULL,
        experiment TEXT NOT NULL,
        sha TEXT NOT NULL,
        tree TEXT NOT NULL,
        branch TEXT,
        subject TEXT NOT NULL,
        author TEXT NOT NULL,
        committed_at REAL NOT NULL,
        state TEXT NOT NULL,
        run_id TEXT,
        seen_at REAL NOT NULL,
        reason TEXT,
        PRIMARY KEY (project_path, experiment, sha)
    ) WITHOUT ROWID;
    CREATE INDEX ci_commits_tree ON ci_commits (project_path, experiment, tree);
    CREATE INDEX ci_commits_run ON ci_commits (run_id) WHERE run_id IS NOT NULL;
    CREATE INDEX ci_commits_seen ON ci_commits (project_path, experiment, seen_at DESC) WHERE state = 'run';
    CREATE TABLE ci_follows (
        project_path TEXT NOT NULL,
        branch TEXT NOT NULL,
        experiment TEXT NOT NULL,
        remote TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        head TEXT,
        detached INTEGER NOT NULL DEFAULT 0,
        active INTEGER NOT NULL DEFAULT 1,
        started_at REAL NOT NULL,
        PRIMARY KEY (project_path, branch)
    ) WITHOUT ROWID;
    """,
]
