"""CI on commits: the commits of followed branches and what became of each (a run, or skipped in a burst), and
the branches followed. A commit's run is an ordinary run; its verdict is read from the run, never copied."""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

_RUN_FIELDS = ("r.seq AS run_seq, r.status AS run_status, r.status_reason AS run_reason, r.verdict AS run_verdict, "
               "r.exit_code AS run_exit_code, r.started_at AS run_started_at, r.finished_at AS run_finished_at, "
               "r.summary AS run_summary")


def _commit_row(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["run_summary"] = json.loads(item["run_summary"]) if item.get("run_summary") else {}
    return item


class CiQueries:
    # commits ------------------------------------------------------------------------------------------
    def record_ci_commit(self, project_path: str, experiment: str, commit: dict[str, Any], state: str, *,
                         branch: str | None, run_id: str | None = None, reason: str | None = None) -> None:
        """A commit seen (`state`: "run" with its run id, or "skipped"); seen again, it takes the new state,
        except that a commit given a run is never marked skipped afterwards."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT INTO ci_commits (project_path, experiment, sha, tree, branch, subject, author, committed_at, "
                "state, run_id, seen_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (project_path, experiment, sha) DO UPDATE SET state = excluded.state, "
                "run_id = excluded.run_id, reason = excluded.reason, seen_at = excluded.seen_at, "
                "tree = excluded.tree, branch = coalesce(ci_commits.branch, excluded.branch) "
                "WHERE excluded.state = 'run' OR ci_commits.state <> 'run'",  # a commit with a run keeps it
                (project_path, experiment, commit["sha"], commit["tree"], branch, commit["subject"],
                 commit["author"], commit["committed_at"], state, run_id, time.time(), reason))

    def ci_commits(self, project_path: str, shas: Iterable[str] | None = None,
                   experiment: str | None = None) -> list[dict[str, Any]]:
        """The commits recorded for a project (those of `shas` only, when given), each with its run's state."""
        sql = (f"SELECT c.*, {_RUN_FIELDS} FROM ci_commits c LEFT JOIN runs r ON r.id = c.run_id "
               "WHERE c.project_path = ?")
        params: list[Any] = [project_path]
        if experiment is not None:
            sql += " AND c.experiment = ?"
            params.append(experiment)
        if shas is not None:
            wanted = list(shas)
            if not wanted:
                return []
            rows: list[dict[str, Any]] = []
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                rows += [_commit_row(r) for r in self.query(  # type: ignore[attr-defined]
                    sql + f" AND c.sha IN ({','.join('?' * len(chunk))})", (*params, *chunk))]
            return rows
        return [_commit_row(r) for r in self.query(sql + " ORDER BY c.committed_at DESC", tuple(params))]  # type: ignore[attr-defined]

    def ci_runs_of_tree(self, project_path: str, experiment: str, tree: str) -> list[dict[str, Any]]:
        """Every commit recorded with this tree and a run, newest run first: the same files give the same run."""
        return [_commit_row(r) for r in self.query(  # type: ignore[attr-defined]
            f"SELECT c.*, {_RUN_FIELDS} FROM ci_commits c JOIN runs r ON r.id = c.run_id "
            "WHERE c.project_path = ? AND c.experiment = ? AND c.tree = ? ORDER BY r.seq DESC",
            (project_path, experiment, tree))]

    def last_ci_run(self, project_path: str, experiment: str, branch: str) -> dict[str, Any] | None:
        """The newest commit of `branch` given a run (one indexed look: the Dashboard asks every second)."""
        rows = self.query(  # type: ignore[attr-defined]
            f"SELECT c.*, {_RUN_FIELDS} FROM ci_commits c LEFT JOIN runs r ON r.id = c.run_id "
            "WHERE c.project_path = ? AND c.experiment = ? AND c.state = 'run' AND c.branch = ? "
            "ORDER BY c.seen_at DESC LIMIT 1", (project_path, experiment, branch))
        return _commit_row(rows[0]) if rows else None

    def ci_runs_of_trees(self, project_path: str, experiment: str, trees: Iterable[str]) -> list[dict[str, Any]]:
        """`ci_runs_of_tree` for many trees in one query each 500 (a bisect's whole range), newest run first."""
        wanted, rows = sorted(set(trees)), []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows += [_commit_row(r) for r in self.query(  # type: ignore[attr-defined]
                f"SELECT c.*, {_RUN_FIELDS} FROM ci_commits c JOIN runs r ON r.id = c.run_id "
                f"WHERE c.project_path = ? AND c.experiment = ? AND c.tree IN ({','.join('?' * len(chunk))})",
                (project_path, experiment, *chunk))]
        return sorted(rows, key=lambda row: -row["run_seq"])

    def ci_run_states(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The state of these runs as `ci_commits` joins it, by run id: what an awaited commit's run says now
        (read from the run itself, so a commit recorded again since still finds it)."""
        wanted = list(run_ids)
        if not wanted:
            return {}
        rows = self.query(f"SELECT r.id AS run_id, {_RUN_FIELDS} FROM runs r "  # type: ignore[attr-defined]
                          f"WHERE r.id IN ({','.join('?' * len(wanted))})", tuple(wanted))
        return {row["run_id"]: _commit_row(row) for row in rows}

    def ci_commit_of_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM ci_commits WHERE run_id = ?", (run_id,))  # type: ignore[attr-defined]
        return dict(rows[0]) if rows else None

    # followed branches --------------------------------------------------------------------------------
    def follow_branch(self, project_path: str, branch: str, experiment: str, *, remote: str | None,
                      options: dict[str, Any], detached: bool) -> None:
        """Wanted followed from now (again, after `ci stop`), with these options."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT INTO ci_follows (project_path, branch, experiment, remote, options, detached, active, "
                "started_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT (project_path, branch) DO UPDATE SET "
                "experiment = excluded.experiment, remote = excluded.remote, options = excluded.options, "
                "detached = excluded.detached, active = 1, started_at = excluded.started_at",
                (project_path, branch, experiment, remote, json.dumps(options), int(detached), time.time()))

    def followed_branches(self, project_path: str | None = None, *, active: bool | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM ci_follows WHERE 1", []
        if project_path is not None:
            sql += " AND project_path = ?"
            params.append(project_path)
        if active is not None:
            sql += " AND active = ?"
            params.append(int(active))
        rows = self.query(sql + " ORDER BY project_path, branch", tuple(params))  # type: ignore[attr-defined]
        return [dict(r) | {"options": json.loads(r["options"])} for r in rows]

    def has_detached_followers(self) -> bool:
        """One small query: whether any start must look for a follower to resume (after a reboot)."""
        return bool(self.query("SELECT 1 FROM ci_follows WHERE detached = 1 AND active = 1 LIMIT 1"))  # type: ignore[attr-defined]

    def set_followed_head(self, project_path: str, branch: str, head: str) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE ci_follows SET head = ? WHERE project_path = ? AND branch = ?",
                         (head, project_path, branch))

    def forget_start_attempt(self, lease: str) -> None:
        """A detached follower that started well clears its start's backoff lease (whoever took it)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("DELETE FROM leases WHERE name = ?", (lease,))

    def unfollow_branch(self, project_path: str, branch: str | None = None) -> list[str]:
        """No longer wanted followed (its follower ends at its next look); the branches that were."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            where, params = "project_path = ? AND active = 1", [project_path]
            if branch is not None:
                where += " AND branch = ?"
                params.append(branch)
            names = [r[0] for r in conn.execute(f"SELECT branch FROM ci_follows WHERE {where}", params)]
            conn.execute(f"UPDATE ci_follows SET active = 0 WHERE {where}", params)
        return names
