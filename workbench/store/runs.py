"""Queries on runs, their params, artifacts and events."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Iterable

from workbench.errors import NotFound, WorkbenchError
from workbench.jsonsafe import json_safe
from workbench.redaction import redact_run_fields
from workbench.store.leases import lease_name

JSON_COLUMNS = ("params", "argv", "env", "gpu_uuids", "spec", "summary", "handle", "waiting", "placement")
ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled", "lost")
STATUSES = ACTIVE + FINAL
LIST_COLUMNS = (
    "id, project, experiment, status, status_reason, machine, executor, created_at, started_at, "
    "finished_at, exit_code, params, summary, metric_points, verdict, hourly_cost, gpu_share, sweep_id, trial, kind"
)


SORTS = {
    "created": "created_at", "started": "created_at",  # runs start in creation order; created_at is indexed
    "status": "status",
    "project": "project, experiment", "experiment": "experiment", "machine": "machine", "id": "id",
    "duration": "coalesce(finished_at, 1e12) - coalesce(started_at, 1e12)",
}
# Sorts by a value: "param:NAME" (any type) and "metric:NAME" (the last value; numbers only, NaN as missing).
VALUE_SORTS = {"param": "params", "metric": "summary"}

# A JSON member (a json_each row) as the Runs table shows it (formatting.short_value): floats to 4 significant
# digits, integers and strings as they are, booleans and null as Python writes them, lists and tables near
# enough to Python's repr ("[64, 32]").
_SHOWN = ("(CASE type WHEN 'real' THEN printf('%.4g', atom) WHEN 'integer' THEN CAST(atom AS TEXT) "
          "WHEN 'text' THEN atom WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' WHEN 'null' THEN 'None' "
          "ELSE replace(replace(replace(value, ',', ', '), ':', ': '), '\"', '''') END)")


def parse_filter(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The filter box's text as free text and `key=value` terms, each as the table shows it:
    `mnist lr=0.3 layers=[64, 32]` -> ("mnist", [("lr", "0.3"), ("layers", "[64, 32]")]). A value that opens
    a bracket runs on until it is closed."""
    words: list[str] = []
    terms: list[tuple[str, str]] = []
    tokens = text.split()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        key, equals, value = token.partition("=")
        if not equals or not key:
            words.append(token)
            continue
        while i < len(tokens) and (value.count("[") > value.count("]") or value.count("{") > value.count("}")):
            value += " " + tokens[i]
            i += 1
        terms.append((key, value))
    return " ".join(words), terms


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _term(key: str, value: str) -> tuple[str, list[Any]]:
    """A run whose param or last metric value `key` shows as `value` (or equals it as a number; `key=` alone:
    any run that has `key`). Evaluated by SQLite's JSON functions, one pass over the runs."""
    if not value:
        test, extra = "", []
    else:
        number = _number(value)
        test = f" AND ({_SHOWN} = ? COLLATE NOCASE" + (" OR (type IN ('integer', 'real') AND atom = ?))"
                                                       if number is not None else ")")
        extra = [value] + ([number] if number is not None else [])
    member = "EXISTS (SELECT 1 FROM json_each(runs.{column}) WHERE key = ?" + test + ")"
    return (f"({member.format(column='params')} OR {member.format(column='summary')})",
            [key, *extra] * 2)


def _where(status: str | None, project: str | None, experiment: str | None,
           text: str | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if status:
        if status not in STATUSES:
            raise WorkbenchError(f"unknown status {status!r}", hint=", ".join(STATUSES))
        clauses.append(f"status = '{status}'")  # a literal, so SQLite can use the partial index of live runs
    for column, value in (("project", project), ("experiment", experiment)):
        if value:
            clauses.append(f"{column} = ?")
            args.append(value)
    words, terms = parse_filter(text or "")
    for key, value in terms:
        clause, term_args = _term(key, value)
        clauses.append(clause)
        args += term_args
    if words:
        escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = "LIKE ? ESCAPE '\\'"
        clauses.append(f"(id {like} OR project {like} OR experiment {like} OR status {like} OR params {like})")
        args += [f"%{escaped}%"] * 5
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _sort_value(sort: str) -> tuple[str, list[Any]] | None:
    """The SQL of a param or metric sort key ("param:lr", "metric:loss"), or None for a column sort."""
    kind, _, name = sort.partition(":")
    column = VALUE_SORTS.get(kind)
    if column is None or not name:
        return None
    numeric = kind == "metric"  # a NaN (stored as "NaN") or a non-number sorts as missing
    if '"' in name:  # a JSON path cannot quote it: look the member up by name instead
        where = " AND type IN ('integer', 'real')" if numeric else ""
        return f"(SELECT atom FROM json_each(runs.{column}) WHERE key = ?{where})", [name]
    path = '$."' + name + '"'
    if numeric:
        return (f"(CASE WHEN json_type({column}, ?) IN ('integer', 'real') THEN json_extract({column}, ?) END)",
                [path, path])
    return f"json_extract({column}, ?)", [path]


def _order(sort: str, descending: bool, seq: str = "seq") -> str:
    direction = "DESC" if descending else "ASC"
    if _sort_value(sort) is not None:  # missing values last, whichever the direction
        return f"sort_key IS NULL, sort_key {direction}, {seq} {direction}"
    return f"{SORTS.get(sort, 'created_at')} {direction}, seq {direction}"


def decode_run(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    for column in JSON_COLUMNS:
        if column in run and isinstance(run[column], str):
            run[column] = json.loads(run[column])
    return run


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    """JSON columns hold strict JSON (NaN/inf as strings), so SQLite's JSON functions can read them."""
    return {k: (json.dumps(json_safe(v)) if k in JSON_COLUMNS and v is not None else v) for k, v in fields.items()}


class RunQueries:
    conn: sqlite3.Connection

    def insert_run(self, fields: dict[str, Any]) -> int:
        params = fields.get("params", {})
        fields = redact_run_fields(fields)  # the history keeps the redacted form only
        with self.tx() as conn:  # type: ignore[attr-defined]
            encoded = _encode(fields)
            columns = ", ".join(encoded)
            marks = ", ".join("?" for _ in encoded)
            seq = conn.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", tuple(encoded.values())).lastrowid
            conn.executemany(
                "INSERT INTO params (run_seq, name, value) VALUES (?, ?, ?)",
                [(seq, name, json.dumps(json_safe(value))) for name, value in params.items()],
            )
            conn.execute(
                "INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, 'created', ?)",
                (time.time(), fields["id"], f"{fields['project']}/{fields['experiment']} on {fields['machine']}"),
            )
            if fields.get("status") in ACTIVE:  # GPUs it is recorded with are its own (a GPU taken: IntegrityError)
                conn.executemany(
                    "INSERT INTO gpu_reservations (machine, uuid, run_id, reserved_at) VALUES (?, ?, ?, ?)",
                    [(fields["machine"], uuid, fields["id"], time.time()) for uuid in fields.get("gpu_uuids") or []])
        return int(seq)

    def mark_running(self, run_id: str, handle: dict[str, Any], started_at: float, *,
                     adopted: bool = False) -> bool:
        """queued -> running, unless something (a cancel, the reconciler) already decided otherwise: the
        launcher then stops what it started. A run `adopted` (found already running after its launcher died)
        is recorded as running even when a cancel is pending: it is running, and the cancel then stops it."""
        pending_cancel = "" if adopted else " AND cancel_requested = 0"
        with self.tx() as conn:  # type: ignore[attr-defined]
            return conn.execute(
                "UPDATE runs SET status = 'running', handle = ?, started_at = ? "
                f"WHERE id = ? AND status = 'queued'{pending_cancel}",
                (json.dumps(handle), started_at, run_id),
            ).rowcount == 1

    def update_run(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        encoded = _encode(fields)
        assignments = ", ".join(f"{k} = ?" for k in encoded)
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*encoded.values(), run_id))

    def finish_run(self, run_id: str, status: str, *, exit_code: int | None, reason: str | None,
                   finished_at: float | None = None) -> None:
        """Records a final status once; a run already final keeps its first verdict."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            changed = conn.execute(
                "UPDATE runs SET status = ?, exit_code = ?, status_reason = ?, finished_at = ? "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (status, exit_code, reason, finished_at or time.time(), run_id),
            ).rowcount
            if changed:
                conn.execute(
                    "INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, ?, ?)",
                    (time.time(), run_id, status, reason or f"exit code {exit_code}"),
                )
                conn.execute("UPDATE runs SET waiting = NULL WHERE id = ?", (run_id,))
                conn.execute("DELETE FROM gpu_reservations WHERE run_id = ?", (run_id,))  # its GPUs are free

    def get_run(self, ref: str) -> dict[str, Any]:
        """A run by full id or unique prefix."""
        ref = ref.strip()
        if not ref:
            raise NotFound("no run id given")
        rows = self.query("SELECT * FROM runs WHERE id = ?", (ref,))  # type: ignore[attr-defined]
        if not rows:
            rows = self.query(  # type: ignore[attr-defined]
                "SELECT * FROM runs WHERE id >= ? AND id < ? LIMIT 2", (ref, ref + "\uffff")
            )
        if not rows:
            raise NotFound(f"no run {ref!r}", hint="see `workbench runs list`")
        if len(rows) > 1:
            raise WorkbenchError(f"run id prefix {ref!r} is ambiguous", hint="type more characters")
        return decode_run(rows[0])

    def value_names(self, *, status: str | None = None, project: str | None = None, experiment: str | None = None,
                    text: str | None = None) -> tuple[list[str], list[str]]:
        """Every param name and every metric name (A–Z) of the runs a filter matches, in SQL: the keys a
        list can be sorted by, whatever page is shown."""
        where, args = _where(status, project, experiment, text)
        names = []
        for column in ("params", "summary"):
            rows = self.query(  # type: ignore[attr-defined]
                f"SELECT DISTINCT j.key AS name FROM (SELECT {column} AS doc FROM runs{where}) AS r, "
                f"json_each(r.doc) AS j WHERE json_valid(r.doc) ORDER BY j.key", list(args))
            names.append([row["name"] for row in rows])
        return names[0], names[1]

    def first_check_metrics(self, ids: list[str]) -> dict[str, str]:
        """Run id -> the metric its experiment's first check reads (its recorded spec's order), for the runs
        that have checks: one query per 500 ids, no run record decoded."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.query(  # type: ignore[attr-defined]
                f"SELECT id, json_extract(spec, '$.checks[0].metric') AS metric FROM runs "
                f"WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
            found.update((row["id"], row["metric"]) for row in rows if row["metric"])
        return found

    def list_runs(self, *, limit: int | None = 100, offset: int = 0, status: str | None = None,
                  project: str | None = None, experiment: str | None = None, text: str | None = None,
                  sort: str = "created", descending: bool = True) -> list[dict[str, Any]]:
        """A page of runs. `text` holds free words and `key=value` terms (see parse_filter); `sort` is a
        column name, or "param:NAME" / "metric:NAME" (missing values last)."""
        where, args = _where(status, project, experiment, text)
        value = _sort_value(sort)
        page = " LIMIT ? OFFSET ?" if limit else ""
        if limit:
            args += [limit, offset]
        if value is None:
            sql = f"SELECT {LIST_COLUMNS} FROM runs{where} ORDER BY {_order(sort, descending)}{page}"
        else:  # sort (seq, key) pairs only, then read the page's rows: a deep page sorts no JSON text
            sql = (f"SELECT {LIST_COLUMNS} FROM (SELECT seq AS page_seq, {value[0]} AS sort_key FROM runs{where} "
                   f"ORDER BY {_order(sort, descending)}{page}) CROSS JOIN runs ON runs.seq = page_seq "
                   f"ORDER BY {_order(sort, descending, 'page_seq')}")
            args = value[1] + args
        return self._listed(sql, args)

    def recently_finished(self, limit: int = 8) -> list[dict[str, Any]]:
        """Runs that have ended, the last to finish first (a run lost without a finish stamp by its creation)."""
        return self._listed(f"SELECT {LIST_COLUMNS} FROM runs WHERE status NOT IN ('queued', 'running') "
                            "ORDER BY coalesce(finished_at, created_at) DESC, seq DESC LIMIT ?", [limit])

    def _listed(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        """The rows of a LIST_COLUMNS query, params and summary decoded."""
        with self.lock:  # type: ignore[attr-defined]
            cursor = self.conn.execute(sql, args)
            cursor.row_factory = None
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        loads = json.loads
        out = []
        for row in rows:
            run = dict(zip(names, row))
            run["params"] = loads(run["params"])
            run["summary"] = loads(run["summary"])
            out.append(run)
        return out

    def count_matching(self, *, status: str | None = None, project: str | None = None,
                       experiment: str | None = None, text: str | None = None) -> int:
        where, args = _where(status, project, experiment, text)
        return self.query(f"SELECT count(*) FROM runs{where}", tuple(args))[0][0]  # type: ignore[attr-defined]

    def list_runs_json(self, *, limit: int | None = 100, status: str | None = None, project: str | None = None,
                       experiment: str | None = None, now: float) -> str:
        """The run list as one JSON array, built by SQLite's JSON functions (100k runs in about a second,
        where decoding and re-encoding each row in Python takes several)."""
        where, args = _where(status, project, experiment, None)
        inner = f"SELECT {LIST_COLUMNS} FROM runs{where} ORDER BY created_at DESC, seq DESC" + \
            (" LIMIT ?" if limit else "")
        if limit:
            args.append(limit)
        # params and summary are stored as JSON text already: splice them in rather than re-parse them.
        sql = (
            "SELECT '[' || coalesce(group_concat(rtrim(json_object("
            "'id', id, 'project', project, 'experiment', experiment, 'status', status, "
            "'status_reason', status_reason, 'machine', machine, 'executor', executor, "
            "'created_at', created_at, 'started_at', started_at, 'finished_at', finished_at, "
            "'exit_code', exit_code, 'metric_points', metric_points, 'verdict', verdict, 'kind', kind, "
            "'duration', CASE WHEN started_at IS NULL THEN NULL "
            "ELSE max(0.0, coalesce(finished_at, ?) - started_at) END), '}') "
            "|| ',\"params\":' || params || ',\"summary\":' || summary || '}', ','), '') || ']' "
            f"FROM ({inner})"
        )
        return self.query(sql, (now, *args))[0][0]  # type: ignore[attr-defined]

    def sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        """JupyterLab sessions, the newest first: the running ones and the most recent that ended."""
        rows = self.query("SELECT * FROM runs WHERE kind = 'session' "  # type: ignore[attr-defined]
                          "ORDER BY created_at DESC LIMIT ?", (limit,))
        return [decode_run(r) for r in rows]

    def run_exists(self, run_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM runs WHERE id = ?", (run_id,)))  # type: ignore[attr-defined]

    def count_runs(self) -> int:
        return self.query("SELECT count(*) FROM runs")[0][0]  # type: ignore[attr-defined]

    def active_runs(self, waiting: bool = True) -> list[dict[str, Any]]:
        """Runs queued or running; without `waiting`, not those still in the queue (a sweep's thousands of
        queued trials are not decoded by every look that only cares for runs an executor holds)."""
        rows = self.query("SELECT * FROM runs WHERE status IN ('queued', 'running')"  # type: ignore[attr-defined]
                          + ("" if waiting else " AND waiting IS NULL") + " ORDER BY seq")
        return [decode_run(r) for r in rows]

    def active_run_ids(self) -> set[str]:
        return {r[0] for r in self.query("SELECT id FROM runs WHERE status IN ('queued', 'running')")}  # type: ignore[attr-defined]

    def delete_run(self, run_id: str) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            seq = conn.execute("SELECT seq FROM runs WHERE id = ?", (run_id,)).fetchone()
            if seq is None:
                return
            conn.execute("DELETE FROM metrics WHERE run_seq = ?", (seq[0],))
            conn.execute("DELETE FROM metric_stats WHERE run_seq = ?", (seq[0],))
            conn.execute("DELETE FROM gpu_reservations WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE seq = ?", (seq[0],))
            conn.execute("DELETE FROM leases WHERE name = ?", (lease_name(run_id),))
            conn.execute(
                "INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, 'removed', 'run removed')",
                (time.time(), run_id),
            )

    def note_unreachable(self, run_id: str, prefix: str, reason: str, event: str) -> bool:
        """Sets an active run's reason (with its event) unless it already starts with `prefix`: one
        conditional UPDATE, so a run that ends meanwhile, or a second reconciler, never gets it twice."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            changed = conn.execute(
                "UPDATE runs SET status_reason = ? WHERE id = ? AND status IN ('queued', 'running') "
                "AND substr(coalesce(status_reason, ''), 1, ?) != ?", (reason, run_id, len(prefix), prefix)).rowcount
            if changed:
                conn.execute("INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, ?, ?)",
                             (time.time(), run_id, "unreachable", event))
        return bool(changed)

    def clear_unreachable(self, run_id: str, prefix: str, event: str) -> bool:
        """Clears an active run's reason that starts with `prefix` (with a "reachable" event), once."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            changed = conn.execute(
                "UPDATE runs SET status_reason = NULL WHERE id = ? AND status IN ('queued', 'running') "
                "AND substr(coalesce(status_reason, ''), 1, ?) = ?", (run_id, len(prefix), prefix)).rowcount
            if changed:
                conn.execute("INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, ?, ?)",
                             (time.time(), run_id, "reachable", event))
        return bool(changed)

    def add_event(self, run_id: str | None, kind: str, message: str) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, ?, ?)",
                (time.time(), run_id, kind, message),
            )

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query(  # type: ignore[attr-defined]
            "SELECT ts, kind, message FROM events WHERE run_id = ? ORDER BY id", (run_id,))]

    def warning_recorded(self, message: str) -> bool:
        """A warning with exactly this message was recorded, for any run (advice said once per data dir)."""
        return bool(self.query("SELECT 1 FROM events WHERE kind = 'warning' AND message = ? LIMIT 1",  # type: ignore[attr-defined]
                               (message,)))

    def last_event_containing(self, kind: str, text: str) -> dict[str, Any] | None:
        """The newest event of `kind`, of any run, whose message contains `text`."""
        rows = self.query("SELECT kind, message FROM events WHERE kind = ? AND instr(message, ?) > 0 "  # type: ignore[attr-defined]
                          "ORDER BY id DESC LIMIT 1", (kind, text))
        return dict(rows[0]) if rows else None

    def set_artifacts(self, run_seq: int, artifacts: Iterable[tuple[str, int, str, str | None]]) -> None:
        """(path, size, sha256, link): a symbolic link has its target in `link`, size 0 and sha256 ''."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.executemany(
                "INSERT OR REPLACE INTO artifacts (run_seq, path, size, sha256, link) VALUES (?, ?, ?, ?, ?)",
                [(run_seq, *a) for a in artifacts],
            )

    def record_checks(self, run_seq: int, results: list[dict[str, Any]]) -> str | None:
        """Each check's value and outcome, and the run's verdict: pass when every check passed."""
        if not results:
            return None
        verdict = "pass" if all(r["passed"] for r in results) else "fail"
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.executemany(
                "INSERT OR REPLACE INTO checks (run_seq, metric, expression, value, passed) VALUES (?, ?, ?, ?, ?)",
                [(run_seq, r["metric"], r["expression"], r["value"], int(r["passed"])) for r in results])
            conn.execute("UPDATE runs SET verdict = ? WHERE seq = ?", (verdict, run_seq))
        return verdict

    def checks(self, run_seq: int) -> list[dict[str, Any]]:
        rows = self.query("SELECT metric, expression, value, passed FROM checks WHERE run_seq = ? ORDER BY metric",  # type: ignore[attr-defined]
                          (run_seq,))
        return [{"metric": m, "expression": e, "value": v, "passed": bool(p)} for m, e, v, p in rows]

    def artifacts(self, run_seq: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query(  # type: ignore[attr-defined]
            "SELECT path, size, sha256, link FROM artifacts WHERE run_seq = ? ORDER BY path", (run_seq,))]

    def referenced_snapshots(self) -> set[str]:
        return {r[0] for r in self.query(  # type: ignore[attr-defined]  (a running tpe sweep's trials to come)
            "SELECT DISTINCT snapshot FROM runs WHERE snapshot IS NOT NULL "
            "UNION SELECT snapshot FROM sweeps WHERE status = 'running' "
            "UNION SELECT snapshot FROM deployment_targets WHERE snapshot IS NOT NULL AND state != 'removed'")}

    def all_run_ids(self) -> set[str]:
        return {r[0] for r in self.query("SELECT id FROM runs")}  # type: ignore[attr-defined]
