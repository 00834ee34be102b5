"""Issue 8, item 1: a run's secrets never reach the history, by one rule, wherever they are stored or shown."""

from __future__ import annotations

import json
import sqlite3

import pytest

from helpers import assert_one_line_error
from workbench.redaction import REDACTED, redact_env
from workbench.store import open_store
from workbench.store.schema import MIGRATIONS

SECRETS = {
    "OPENAI_KEY": "sk-openai-123", "AWS_SECRET_ACCESS_KEY": "aws-abc", "hfToken": "hf-xyz",
    "DB_PASSWD": "pw-1", "GIT_AUTH": "auth-2", "SSH_PRIVATE": "priv-3", "MY_CREDENTIALS": "cred-4",
}


def test_one_rule_redacts_names_in_any_case_and_url_passwords():
    env = redact_env({**SECRETS, "OMP_NUM_THREADS": "2", "DATABASE_URL": "postgres://me:hunter2@db:5432/x",
                      "PLAIN_URL": "https://example.org/a:b@c", "SLASHED": "postgres://u:pa/ss@h/db",
                      "AT": "redis://u:p@ss@h:6379"})
    assert all(env[name] == REDACTED for name in SECRETS)
    assert env["OMP_NUM_THREADS"] == "2"
    assert env["DATABASE_URL"] == f"postgres://me:{REDACTED}@db:5432/x"
    assert env["PLAIN_URL"] == "https://example.org/a:b@c"  # no user:password before the host
    assert env["SLASHED"] == f"postgres://u:{REDACTED}@h/db" and env["AT"] == f"redis://u:{REDACTED}@h:6379"


def _spec(extra_env: str = "") -> str:
    env = ", ".join(f'{k} = "{v}"' for k, v in SECRETS.items())
    return f"""
[project]
name = "secrets"
[experiments.show]
image = "busybox:latest"
command = ["sh", "-c", "env > $WORKBENCH_OUTPUT/env.txt"]
env = {{ {env}, PLAIN = "visible"{extra_env} }}
"""


def _db_bytes(home) -> bytes:
    return b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith("workbench.db"))


@pytest.mark.usefixtures("docker_client")
def test_secrets_are_redacted_in_record_json_text_and_database_but_reach_the_run(cli, make_project, home):
    root = make_project(_spec())
    done = cli("run", str(root), "--wait", "--json")
    assert done.code == 0, done.err
    run_id = done.json()["id"]
    env_txt = (home / "runs" / run_id / "out" / "env.txt").read_text()
    assert all(f"{k}={v}" in env_txt for k, v in SECRETS.items())  # the run gets the real values

    shown = cli("runs", "show", run_id, "--json").json()
    for where in (shown["env"], shown["spec"]["env"]):
        assert all(where[k] == REDACTED for k in SECRETS), where
        assert where["PLAIN"] == "visible"
    text = cli("runs", "show", run_id).out + cli("runs", "list").out
    stored = _db_bytes(home)
    for value in SECRETS.values():
        assert value not in text
        assert value.encode() not in stored, value


@pytest.mark.usefixtures("docker_client")
def test_rerun_takes_redacted_values_from_the_project_or_the_environment(cli, make_project, home):
    root = make_project(_spec())
    first = cli("run", str(root), "--wait", "--json").json()["id"]
    again = cli("runs", "rerun", first, "--wait", "--json")
    assert again.code == 0, again.err
    env_txt = (home / "runs" / again.json()["id"] / "out" / "env.txt").read_text()
    assert "OPENAI_KEY=sk-openai-123" in env_txt and f"OPENAI_KEY={REDACTED}" not in env_txt

    (root / "workbench.toml").write_text(_spec().replace('OPENAI_KEY = "sk-openai-123", ', ""))
    missing = cli("runs", "rerun", first, "--wait")
    assert_one_line_error(missing, "OPENAI_KEY", "redacted", "export OPENAI_KEY")
    from_env = cli("runs", "rerun", first, "--wait", "--json", env={"OPENAI_KEY": "from-env"})
    assert from_env.code == 0, from_env.err
    assert "OPENAI_KEY=from-env" in (home / "runs" / from_env.json()["id"] / "out" / "env.txt").read_text()


def test_history_written_by_an_older_version_is_redacted_on_upgrade(tmp_path):
    path = tmp_path / "workbench.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:4]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 4")
    spec = {"env": {"OPENAI_KEY": "sk-old", "PLAIN": "p"}, "name": "x"}
    conn.execute("INSERT INTO runs (id, project, project_path, experiment, status, machine, executor, created_at, "
                 "env, spec) VALUES ('r1', 'p', '/p', 'e', 'succeeded', 'local', 'docker', 0, ?, ?)",
                 (json.dumps({"OPENAI_KEY": "sk-old", "PLAIN": "p"}), json.dumps(spec)))
    conn.commit()
    conn.close()
    store = open_store(path)
    run = store.get_run("r1")
    assert run["env"] == {"OPENAI_KEY": REDACTED, "PLAIN": "p"}
    assert run["spec"]["env"] == {"OPENAI_KEY": REDACTED, "PLAIN": "p"} and run["spec"]["name"] == "x"
    store.close()
    assert b"sk-old" not in path.read_bytes()
