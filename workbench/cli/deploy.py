"""`workbench models ...`, `workbench deploy` and `workbench deployments ...`: the registry and deployments
from the command line (the same services the app's Models and Deployments screens use)."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from workbench.cli.output import columns, emit_json, say
from workbench.formatting import number_text, pairs, when
from workbench.textsafe import log_text, printable


def _short_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    return " ".join(pairs(metrics, limit, value_text=number_text).items)


def cmd_models_register(wb: Any, args: argparse.Namespace) -> int:
    version = wb.register_model(args.run, args.artifact, args.name, force=args.force)
    if args.json:
        emit_json(version.to_json())
    else:
        forced = " (forced past its gate)" if version.forced else ""
        say(f"{version.name}:{version.version} registered from run {version.run_id} "
            f"({version.artifact}, {version.size:,} bytes, sha256 {version.sha256[:12]}){forced}")
    return 0


def cmd_models_list(wb: Any, args: argparse.Namespace) -> int:
    listed = wb.models()
    if args.json:
        emit_json([m.to_json() for m in listed])
        return 0
    if not listed:
        say("no models yet: register one with `workbench models register RUN ARTIFACT --name NAME`")
        return 0
    for m in listed:
        aliases = " ".join(f"@{a}→{v}" for a, v in sorted(m.aliases.items()))
        print(printable(f"{m.name:<20} {m.versions} version(s), latest {m.latest}  {aliases}".rstrip()))
    return 0


def cmd_models_show(wb: Any, args: argparse.Namespace) -> int:
    shown = wb.model(args.model)
    if args.json:
        emit_json(shown.to_json())
        return 0
    from workbench.services.answers import ModelDetail

    if isinstance(shown, ModelDetail):
        print(printable(f"model {shown.name}"))
        for v in shown.versions:
            aliases = " ".join(f"@{a}" for a in v.aliases or [])
            lineage = v.lineage
            print(printable(f"  {v.version:>3}  run {v.run_id}  {lineage['project']}/{lineage['experiment']}  "
                            f"{lineage.get('verdict') or '-':<4} {_short_metrics(lineage['metrics'])}  "
                            f"{when(v.created_at)}{' forced' if v.forced else ''}  {aliases}".rstrip()))
        if shown.alias_history:
            print("  alias history:")  # newest first, as every history the CLI lists
            for h in reversed(shown.alias_history):
                moved = f"{h.previous} → {h.version}" if h.previous else f"→ {h.version}"
                print(printable(f"    {when(h.ts)}  @{h.alias} {moved}  by {h.who}"))
        return 0
    lineage = shown.lineage
    rows = [("model", f"{shown.name}:{shown.version}" + "".join(f" @{a}" for a in shown.aliases or [])),
            ("file", f"{shown.filename} ({shown.size:,} bytes, sha256 {shown.sha256})"),
            ("from run", f"{shown.run_id} ({lineage['status']}; artifact {shown.artifact})"
                         + (" — forced past its gate" if shown.forced else "")),
            ("project", f"{lineage['project']}/{lineage['experiment']} ({lineage['project_path']})"),
            ("params", " ".join(f"{k}={v}" for k, v in lineage["params"].items()) or "-"),
            ("metrics", _short_metrics(lineage["metrics"], 10) or "-"),
            ("checks", lineage.get("verdict") or "-"),
            ("snapshot", lineage.get("snapshot") or "-"), ("image", lineage.get("image") or "-"),
            ("registered", when(shown.created_at))]
    for key, value in rows:
        print(printable(f"{key:<11}{value}"))
    return 0


def cmd_models_alias(wb: Any, args: argparse.Namespace) -> int:
    moved = wb.alias_model(args.name, args.version, args.alias)
    if args.json:
        emit_json(moved.to_json())
    else:
        was = f" (was {moved.previous})" if moved.previous else ""
        say(f"{moved.name}@{moved.alias} → version {moved.version}{was}")
    return 0


_DEPLOYMENT_HEADER = ("NAME", "STATUS", "MODEL", "LIVE", "HEALTH", "ENDPOINT", "MACHINE", "LAST SWITCH")


def _deployment_cells(d: Any) -> tuple[str, ...]:
    """A deployment's row (the facade's DeploymentSummary): its endpoint only while a version serves there
    (`-` once stopped)."""
    serving = bool(d.live_container)
    endpoint = d.endpoint + (" (token)" if d.auth == "token" else "") if serving else "-"
    last = d.last_switch
    return tuple(printable(str(cell)) for cell in (
        d.name, d.status, d.model, f"v{d.live_version}" if serving else "none", d.health or "-",
        endpoint, d.machine, when(last["ts"]) if last else "-"))


def _deployment_line(d: Any) -> str:
    name, status, model, live, health, endpoint, machine, last = _deployment_cells(d)
    switched = f"  last switch {last}" if last != "-" else ""
    kept = f" ({printable(d.endpoint)} once it serves again)" if endpoint == "-" else ""
    return f"{name}  {status}  {model}  live {live}  health {health}  endpoint {endpoint}{kept} ({machine}){switched}"


def _canary_line(d: Any) -> str | None:
    c = d.canary
    if not c:
        return None
    line = (f"  canary v{c['version']} at {c['share']}% until {when(c['until'])}, rolled back above "
            f"{c['max_error_rate']:g}% errors")
    return line + (f"; {c['note']}" if c.get("note") else "")


def _figure(f: dict[str, Any] | None) -> str:
    if f is None:
        return "-"
    if not f["requests"]:
        return "no requests"
    rate = f"{f['rps']:.1f}/s " if f.get("rps") is not None else ""
    latency = (f" p50 {f['p50_ms']:.0f} ms p99 {f['p99_ms']:.0f} ms" if f.get("p50_ms") is not None else "")
    return f"{rate}{f['requests']:,} req {f['error_pct']:.1f}% err{latency}"


def _traffic_lines(shown: Any) -> list[str]:
    t = shown.traffic
    if not t:
        return []
    if t.get("error"):
        return [f"traffic: unknown ({t['error']})"]
    if not t["versions"]:
        return []
    lines = ["traffic (from the proxy):"]
    for v in t["versions"]:
        lines.append(f"  v{v['version']:<4} {v['role']:<6} {v['share']:>3}%  last minute: {_figure(v['last_minute'])}")
        lines.append(f"  {'':<16}since {when(v['since']) if v.get('since') else 'the proxy started'}: "
                     f"{_figure(v['since_switch'])}")
    return lines


def _seconds(text: str) -> float:
    """60, 60s, 2m, 1h -> seconds (argparse type)."""
    units = {"s": 1, "m": 60, "h": 3600}
    raw = text.strip().lower()
    try:
        return float(raw[:-1]) * units[raw[-1]] if raw and raw[-1] in units else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 60s, 2m)") from None


def _percent(text: str) -> float:
    try:
        return float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r} (e.g. 1%)") from None


def cmd_deploy(wb: Any, args: argparse.Namespace) -> int:
    deployed = wb.deploy(args.model, args.machine, port=args.port, name=args.name, stop_first=args.stop_first,
                         bind=args.bind, canary=args.canary, canary_for=args.canary_for,
                         max_error_rate=args.max_error_rate)
    if args.json:
        emit_json(deployed.to_json())
    elif deployed.canary:
        c = deployed.canary
        print(printable(f"{deployed.name}: canary v{c['version']} gets {c['share']}% of {deployed.endpoint} "
                        f"until {when(c['until'])} (v{deployed.live_version} the rest); the deployment watcher "
                        f"promotes it or rolls it back: `workbench deployments show {deployed.name}`"))
    else:
        print(printable(f"{deployed.name}: v{deployed.live_version} serving at {deployed.endpoint}"))
    return 0


def cmd_deployments_list(wb: Any, args: argparse.Namespace) -> int:
    listed = wb.deployments()
    if args.json:
        emit_json([d.to_json() for d in listed])
        return 0
    if not listed:
        say("no deployments yet: `workbench deploy NAME[:VERSION|@ALIAS] --machine MACHINE`")
        return 0
    lines = columns([_DEPLOYMENT_HEADER] + [_deployment_cells(d) for d in listed])
    print(lines[0])
    for d, line in zip(listed, lines[1:]):
        print(line)
        if d.operation:
            print(printable(f"  {d.operation['kind']} of v{d.operation.get('version')} in progress"))
        if _canary_line(d):
            print(printable(_canary_line(d)))
        if d.health_detail:
            print(printable(f"  {d.health_detail}"))
    return 0


def cmd_deployments_show(wb: Any, args: argparse.Namespace) -> int:
    shown = wb.deployment(args.name)
    if args.json:
        emit_json(shown.to_json())
        return 0
    print(_deployment_line(shown))
    if shown.status_reason:
        print(printable(f"  {shown.status_reason}"))
    if _canary_line(shown):
        print(printable(_canary_line(shown)))
    for line in _traffic_lines(shown):
        print(printable(line))
    if not shown.canary:  # a canary's rollback ends the canary: its line says so
        back = shown.rollback_to
        print(f"rollback to: v{back} (kept, live most recently)" if back else
              "rollback to: - (no earlier version kept)")
    print("versions:")
    for t in shown.targets:
        print(printable(f"  v{t['version']:<4} {t['state']:<8} {t['container']}  since {when(t['created_at'])}"))
    print("history:")  # newest first, as in the app
    for e in reversed(shown.events):
        print(printable(f"  {when(e['ts'])}  {e['kind']:<15} {e['message']}"))
    return 0


def cmd_deployments_rollback(wb: Any, args: argparse.Namespace) -> int:
    back = wb.rollback(args.name)
    if args.json:
        emit_json(back.to_json())
    else:
        print(printable(f"{back.name}: v{back.live_version} serving at {back.endpoint}"))
    return 0


def cmd_deployments_promote(wb: Any, args: argparse.Namespace) -> int:
    done = wb.promote_canary(args.name)
    if args.json:
        emit_json(done.to_json())
    else:
        print(printable(f"{done.name}: v{done.live_version} serving every request at {done.endpoint}"))
    return 0


def cmd_deployments_token(wb: Any, args: argparse.Namespace) -> int:
    print(wb.deployment_token(args.name))
    return 0


def cmd_deployments_logs(wb: Any, args: argparse.Namespace) -> int:
    text = wb.deployment_logs(args.name, args.tail)
    for line in text.rstrip("\n").split("\n") if text else []:
        print(log_text(line))
    return 0


def cmd_deployments_stop(wb: Any, args: argparse.Namespace) -> int:
    stopped = wb.stop_deployment(args.name, remove=args.remove)
    if args.json:
        emit_json(stopped.to_json())
    return 0  # the stop said what it did, in one line


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
    p.add_argument("--bind", help="the address the endpoint listens on (default: [deploy] bind, else every "
                                  "address; 127.0.0.1 for a tunnel-only service)")
    p.add_argument("--canary", type=int, metavar="PERCENT",
                   help="send this share of requests to the new version, then promote or roll back by itself")
    p.add_argument("--canary-for", type=_seconds, default=60.0, metavar="DURATION",
                   help="how long the canary is watched before its verdict (default 60s)")
    p.add_argument("--max-error-rate", type=_percent, default=1.0, metavar="PERCENT",
                   help="the canary is rolled back above this share of 5xx answers (default 1%%)")
    deployments = sub.add_parser("deployments", help="deployments: endpoints, versions, health, history").add_subparsers(
        dest="deployments_command", metavar="ACTION", required=True)
    command(deployments, "list", cmd_deployments_list, "every deployment, checked with its machine")
    p = command(deployments, "show", cmd_deployments_show, "a deployment's versions and its history of switches")
    p.add_argument("name")
    p = command(deployments, "rollback", cmd_deployments_rollback,
                "switch back to the previous version (or end a canary: every request to the live version)")
    p.add_argument("name")
    p = command(deployments, "promote", cmd_deployments_promote, "end a canary now: every request to the new version")
    p.add_argument("name")
    p = command(deployments, "token", cmd_deployments_token, "print the token callers send (auth = \"token\")",
                json_flag=False)
    p.add_argument("name")
    p = command(deployments, "logs", cmd_deployments_logs, "the live version's log tail", json_flag=False)
    p.add_argument("name")
    p.add_argument("--tail", type=int, default=200)
    p = command(deployments, "stop", cmd_deployments_stop, "stop serving (the versions are kept unless --remove)")
    p.add_argument("name")
    p.add_argument("--remove", action="store_true", help="remove its containers and its record too")
