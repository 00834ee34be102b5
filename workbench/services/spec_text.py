"""A project spec's values as the app shows and takes them (pure: the facade reads the spec): a param as its
field's text, why typed text is no value of a param, what the launch form sends against the spec as it is now,
and checks as written."""

from __future__ import annotations

from typing import Any

from workbench.projects.checks import Check
from workbench.projects.spec import SpecError, convert_param, format_param


def param_text(value: Any) -> str:
    """A param's value as its field shows it (and `-p name=TEXT` takes it back)."""
    return format_param(value)


def param_problem(name: str, default: Any, text: str) -> str | None:
    """Why the param cannot take `text`, in the form's words (the spec says it in the CLI's: `-p name='…'`)."""
    try:
        convert_param(name, default, text)
    except SpecError:
        if isinstance(default, bool):
            return f"{name}: expected true or false"
        kind = "an integer" if isinstance(default, int) else "a number"
        return f"{name}: expected {kind}, like the default {default!r}"
    return None


def spec_problems(params: dict[str, Any], typed: dict[str, str],
                  shown: dict[str, Any]) -> tuple[list[tuple[str | None, str]], dict[str, str]]:
    """The experiment's params as its spec says them now against what the form sends: (param, why) for each
    value it cannot take, and the overrides, each value that differs from the spec's default NOW (a default
    changed since the form opened `shown` still runs as the form showed it). A param gone from the spec is a
    problem only when its field was changed."""
    problems: list[tuple[str | None, str]] = []
    overrides: dict[str, str] = {}
    for name, text in typed.items():
        if name not in params:
            if text != format_param(shown[name]):
                problems.append((name, f"{name}: not a parameter of this experiment any more (its "
                                       "workbench.toml changed since this form opened)"))
        elif problem := param_problem(name, params[name], text):
            problems.append((name, problem))
        elif text != format_param(params[name]):
            overrides[name] = text
    return problems, overrides


def check_texts(declared: list[dict[str, Any]], evaluated: list[str]) -> list[str]:
    """The checks a spec declares, as written (`acc >= 0.9`), else those once recorded (their expressions)."""
    texts = []
    for check in declared:
        try:
            texts.append(Check(**check).text)
        except (TypeError, ValueError):  # a record from another version: show what it holds
            texts.append(" ".join(str(v) for v in check.values()))
    return texts or list(evaluated)
