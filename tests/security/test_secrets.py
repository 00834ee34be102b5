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


FROM_ENV_SPEC = """
[project]
name = "from-env"
[experiments.show]
image = "busybox:latest"
command = ["sh", "-c", "printf %s \\"$HF_TOKEN\\" > $WORKBENCH_OUTPUT/hf; printf %s \\"$PLAIN_NAME\\" > $WORKBENCH_OUTPUT/plain"]
env = { HF_TOKEN = { from_env = "WB_TEST_HF" }, PLAIN_NAME = { from_env = "WB_TEST_PLAIN" }, API_KEY = "in-the-file" }
"""
TRICKY = "hf-tok 'single' \"double\" $HOME `id` \\\\ back\nsecond line ; end"


def _runs(cli) -> list:
    listed = cli("runs", "list", "--json")
    assert listed.code == 0, listed.err
    return listed.json()


def test_from_env_takes_the_value_at_launch_and_the_history_keeps_only_the_name(cli, make_project, home):
    """`NAME = { from_env = "VAR" }`: the value comes from the launching environment, exactly; the history
    (runs show, --json, the database) has the name and ***, whatever the name; a rerun asks the environment
    again; a missing variable is one line, with nothing recorded."""
    root = make_project(FROM_ENV_SPEC)
    missing = cli("run", str(root), "--executor", "process", "--wait", env={"WB_TEST_PLAIN": "p"})
    assert_one_line_error(missing, "WB_TEST_HF", "HF_TOKEN", "export WB_TEST_HF")
    assert _runs(cli) == []  # nothing recorded

    plain = "plain-value-visible-nowhere"
    done = cli("run", str(root), "--executor", "process", "--wait", "--json",
               env={"WB_TEST_HF": TRICKY, "WB_TEST_PLAIN": plain})
    assert done.code == 0, done.err
    run_id = done.json()["id"]
    out = home / "runs" / run_id / "out"
    assert (out / "hf").read_text() == TRICKY and (out / "plain").read_text() == plain
    # one warning, at launch, for the secret-looking name written in the file, pointing at from_env
    warnings = [line for line in done.err.splitlines() if line.startswith("warning:") and "API_KEY" in line]
    assert len(warnings) == 1 and 'API_KEY = { from_env = "API_KEY" }' in warnings[0], done.err

    shown = cli("runs", "show", run_id, "--json").json()
    assert shown["env"]["HF_TOKEN"] == REDACTED and shown["env"]["PLAIN_NAME"] == REDACTED
    assert shown["spec"]["env_from"] == {"HF_TOKEN": "WB_TEST_HF", "PLAIN_NAME": "WB_TEST_PLAIN"}
    text = cli("runs", "show", run_id).out
    assert f'"HF_TOKEN": "{REDACTED}"' in text and f'"PLAIN_NAME": "{REDACTED}"' in text, text
    stored = _db_bytes(home)
    for value in (TRICKY, plain, "hf-tok"):
        assert value not in text and value.encode() not in stored, value

    again = cli("runs", "rerun", run_id, "--wait", "--json", env={"WB_TEST_HF": "second", "WB_TEST_PLAIN": "p2"})
    assert again.code == 0, again.err
    assert (home / "runs" / again.json()["id"] / "out" / "hf").read_text() == "second"  # asked again
    before = len(_runs(cli))
    gone = cli("runs", "rerun", run_id, "--wait", env={"WB_TEST_PLAIN": "p2"})
    assert_one_line_error(gone, "WB_TEST_HF")
    assert len(_runs(cli)) == before
