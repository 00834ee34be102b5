"""The one rule for secrets in a run's environment (README, Security): what is stored, printed,
shown in the app or put in an event goes through `redact_env`, so the history never holds the value."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
# A name is secret when it contains one of these words, in any case and position (OPENAI_KEY, hfToken,
# DB_PASSWD, AWS_SECRET_ACCESS_KEY, GIT_AUTH, SSH_PRIVATE, ...). Over-redacting costs a rerun nothing:
# rerun takes redacted values from the project or the environment again.
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASS", "PWD", "CREDENTIAL", "AUTH", "PRIVATE", "COOKIE",
                "SESSION", "SIGNATURE", "CERT", "DSN")
_SECRET_NAME = re.compile("|".join(SECRET_WORDS), re.IGNORECASE)
# Params are hyperparameters, recorded and shown for reproducibility; only unmistakable secret names are
# refused there (a param `n_passes` or `key_dim` is fine), pointing the user to `env`.
_SECRET_PARAM = re.compile(r"token|secret|passw|credential|api_?key|access_?key|private_?key|auth_?key",
                           re.IGNORECASE)
# scheme://user:password@host inside a value: the password goes, whatever the name. The password runs to
# the last `@` of the URL (it may hold `/` or `@` itself).
_URL_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<password>\S*)@(?P<host>[^@\s]*)")


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def is_secret_param(name: str) -> bool:
    return bool(_SECRET_PARAM.search(name))


def redact_value(name: str, value: str) -> str:
    if is_secret_name(name):
        return REDACTED
    return _URL_USERINFO.sub(lambda m: f"{m.group('head')}{REDACTED}@{m.group('host')}", value) \
        if "://" in value else value


def redact_env(env: dict[str, Any]) -> dict[str, Any]:
    return {k: redact_value(k, v) if isinstance(v, str) else (REDACTED if is_secret_name(k) else v)
            for k, v in env.items()}


def redact_run_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A run record with its environment and its spec's environment redacted (and, whatever their names, the
    variables its spec takes `from_env`)."""
    out = dict(fields)
    spec = out.get("spec")
    if isinstance(out.get("env"), dict):
        # a variable the spec takes from the workstation's environment (`from_env`) is never kept, whatever its name
        taken = spec.get("env_from") if isinstance(spec, dict) and isinstance(spec.get("env_from"), dict) else {}
        out["env"] = {k: REDACTED if k in taken else v for k, v in redact_env(out["env"]).items()}
    if isinstance(spec, dict) and isinstance(spec.get("env"), dict):
        out["spec"] = {**spec, "env": redact_env(spec["env"])}
    return out
