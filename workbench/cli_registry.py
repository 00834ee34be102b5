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


def _deployment_line(d: dict[str, Any]) -> str:
    health = d.get("health") or "-"
    live = f"v{d['live_version']}" if d.get("live_container") else "none"
    last = d.get("last_switch")
    switched = f"  last switch {when(last['ts'])}" if last else ""
    return (f"{d['name']:<16} {d['status']:<9} {d['model']}  live {live:<5} health {health:<8} "
            f"{d['endpoint']} ({d['machine']}){switched}")


def cmd_deploy(wb: Any, args: argparse.Namespace) -> int:
    deployed = wb.deploy(args.model, args.machine, port=args.port, name=args.name, stop_first=args.stop_first)
    if args.json:
        emit_json(deployed)
    else:
        print(printable(f"{deployed['name']}: v{deployed['live_version']} serving at {deployed['endpoint']}"))
    return 0


def cmd_deployments_list(wb: Any, args: argparse.Namespace) -> int:
    listed = wb.deployments()
    if args.json:
        emit_json(listed)
        return 0
    if not listed:
        say("no deployments yet: `workbench deploy NAME[:VERSION|@ALIAS] --machine MACHINE`")
        return 0
    for d in listed:
        print(printable(_deployment_line(d)))
        if d.get("operation"):
            print(printable(f"  {d['operation']['kind']} of v{d['operation'].get('version')} in progress"))
        if d.get("health_detail"):
            print(printable(f"  {d['health_detail']}"))
    return 0


def cmd_deployments_show(wb: Any, args: argparse.Namespace) -> int:
    shown = wb.deployment(args.name)
    if args.json:
        emit_json(shown)
        return 0
    print(printable(_deployment_line(shown)))
    if shown.get("status_reason"):
        print(printable(f"  {shown['status_reason']}"))
    print("versions:")
    for t in shown["targets"]:
        print(printable(f"  v{t['version']:<4} {t['state']:<8} {t['container']}  since {when(t['created_at'])}"))
    print("history:")
    for e in shown["events"]:
        print(printable(f"  {when(e['ts'])}  {e['kind']:<15} {e['message']}"))
    return 0


def cmd_deployments_rollback(wb: Any, args: argparse.Namespace) -> int:
    back = wb.rollback(args.name)
    if args.json:
        emit_json(back)
    else:
        print(printable(f"{back['name']}: v{back['live_version']} serving at {back['endpoint']}"))
    return 0


def cmd_deployments_logs(wb: Any, args: argparse.Namespace) -> int:
    text = wb.deployment_logs(args.name, args.tail)
    print(printable(text).rstrip("\n"))
    return 0


def cmd_deployments_stop(wb: Any, args: argparse.Namespace) -> int:
    stopped = wb.stop_deployment(args.name, remove=args.remove)
    if args.json:
        emit_json(stopped)
    else:
        say(f"{args.name}: {stopped['status']}")
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

    p = command(sub, "deploy", cmd_deploy, "serve a model version on a machine behind a stable port (blue/green "
                                           "when it is already deployed)")
    p.add_argument("model", help="NAME, NAME:VERSION or NAME@ALIAS")
    p.add_argument("--machine", required=True, help="where to serve it: local or an SSH machine")
    p.add_argument("--port", type=int, help="the endpoint's port on the machine (default 8080; kept on redeploys)")
    p.add_argument("--name", help="the deployment's name (default: the model's)")
    p.add_argument("--stop-first", action="store_true",
                   help="when the machine's GPUs cannot hold both versions: stop the live one first")
    deployments = sub.add_parser("deployments", help="deployments: endpoints, versions, health, history").add_subparsers(
        dest="deployments_command", metavar="ACTION", required=True)
    command(deployments, "list", cmd_deployments_list, "every deployment, checked with its machine")
    p = command(deployments, "show", cmd_deployments_show, "a deployment's versions and its history of switches")
    p.add_argument("name")
    p = command(deployments, "rollback", cmd_deployments_rollback, "switch back to the previous version")
    p.add_argument("name")
    p = command(deployments, "logs", cmd_deployments_logs, "the live version's log tail", json_flag=False)
    p.add_argument("name")
    p.add_argument("--tail", type=int, default=200)
    p = command(deployments, "stop", cmd_deployments_stop, "stop serving (the versions are kept unless --remove)")
    p.add_argument("name")
    p.add_argument("--remove", action="store_true", help="remove its containers and its record too")
