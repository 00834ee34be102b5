"""`workbench models ...`, `workbench deploy` and `workbench deployments ...`: the registry and deployments
from the command line (the same services the app's Models and Deployments screens use)."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from workbench.cli_output import emit_json, say, when
from workbench.textsafe import printable


def _short_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    items = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(metrics.items())[:limit]]
    return " ".join(items)


def cmd_models_register(wb: Any, args: argparse.Namespace) -> int:
    version = wb.register_model(args.run, args.artifact, args.name, force=args.force)
    if args.json:
        emit_json(version)
    else:
        forced = " (forced past its gate)" if version["forced"] else ""
        say(f"{version['name']}:{version['version']} registered from run {version['run_id']} "
            f"({version['artifact']}, {version['size']:,} bytes, sha256 {version['sha256'][:12]}){forced}")
    return 0


def cmd_models_list(wb: Any, args: argparse.Namespace) -> int:
    listed = wb.models()
    if args.json:
        emit_json(listed)
        return 0
    if not listed:
        say("no models yet: register one with `workbench models register RUN ARTIFACT --name NAME`")
        return 0
    for m in listed:
        aliases = " ".join(f"@{a}→{v}" for a, v in sorted(m["aliases"].items()))
        print(printable(f"{m['name']:<20} {m['versions']} version(s), latest {m['latest']}  {aliases}".rstrip()))
    return 0


def cmd_models_show(wb: Any, args: argparse.Namespace) -> int:
    shown = wb.model(args.model)
    if args.json:
        emit_json(shown)
        return 0
    if "versions" in shown:
        print(printable(f"model {shown['name']}"))
        for v in shown["versions"]:
            aliases = " ".join(f"@{a}" for a in v["aliases"])
            lineage = v["lineage"]
            print(printable(f"  {v['version']:>3}  run {v['run_id']}  {lineage['project']}/{lineage['experiment']}  "
                            f"{lineage.get('verdict') or '-':<4} {_short_metrics(lineage['metrics'])}  "
                            f"{when(v['created_at'])}{' forced' if v['forced'] else ''}  {aliases}".rstrip()))
        if shown["alias_history"]:
            print("  alias history:")
            for h in shown["alias_history"]:
                moved = f"{h['previous']} → {h['version']}" if h["previous"] else f"→ {h['version']}"
                print(printable(f"    {when(h['ts'])}  @{h['alias']} {moved}  by {h['who']}"))
        return 0
    lineage = shown["lineage"]
    rows = [("model", f"{shown['name']}:{shown['version']}" + "".join(f" @{a}" for a in shown["aliases"])),
            ("file", f"{shown['filename']} ({shown['size']:,} bytes, sha256 {shown['sha256']})"),
            ("from run", f"{shown['run_id']} ({lineage['status']}; artifact {shown['artifact']})"
                         + (" — forced past its gate" if shown["forced"] else "")),
            ("project", f"{lineage['project']}/{lineage['experiment']} ({lineage['project_path']})"),
            ("params", " ".join(f"{k}={v}" for k, v in lineage["params"].items()) or "-"),
            ("metrics", _short_metrics(lineage["metrics"], 10) or "-"),
            ("checks", lineage.get("verdict") or "-"),
            ("snapshot", lineage.get("snapshot") or "-"), ("image", lineage.get("image") or "-"),
            ("registered", when(shown["created_at"]))]
    for key, value in rows:
        print(printable(f"{key:<11}{value}"))
    return 0


def cmd_models_alias(wb: Any, args: argparse.Namespace) -> int:
    moved = wb.alias_model(args.name, args.version, args.alias)
    if args.json:
        emit_json(moved)
    else:
        was = f" (was {moved['previous']})" if moved["previous"] else ""
        say(f"{moved['name']}@{moved['alias']} → version {moved['version']}{was}")
    return 0


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    models = sub.add_parser("models", help="the model registry: versions, lineage, aliases").add_subparsers(
        dest="models_command", metavar="ACTION", required=True)
    p = command(models, "register", cmd_models_register, "register a run's artifact as the next version of a model")
    p.add_argument("run", help="run id or unique prefix")
    p.add_argument("artifact", help="the artifact's path in the run's output (e.g. model.npz)")
    p.add_argument("--name", required=True, help="the model's name")
    p.add_argument("--force", action="store_true", help="register even if the run failed or failed its checks")
    command(models, "list", cmd_models_list, "every model: versions and aliases")
    p = command(models, "show", cmd_models_show, "a model's versions and alias history, or one version's lineage")
    p.add_argument("model", help="NAME, NAME:VERSION or NAME@ALIAS")
    p = command(models, "alias", cmd_models_alias, "point an alias (e.g. production) at a version")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("alias")
