"""`workbench machines ...`: this workstation, SSH hosts and Slurm clusters: add, trust, remove, list, stats."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from workbench.cli.output import emit_json, say
from workbench.errors import WorkbenchError
from workbench.textsafe import printable


def cmd_machines_list(wb: Any, args: argparse.Namespace) -> int:
    machines = wb.list_machines()
    if args.json:
        emit_json([m.to_json() for m in machines])
        return 0
    for m in machines:
        cost = f"  ${m.hourly_cost:.2f}/h" if m.hourly_cost is not None else ""
        print(printable(f"{m.name:<16} {m.kind:<6} {m.address}{cost}"))
    return 0


def cmd_machines_add(wb: Any, args: argparse.Namespace) -> int:
    slurm = None
    if args.slurm:
        slurm = {"login": args.slurm, "partition": args.partition, "account": args.account, "time": args.time,
                 "setup": args.setup, "poll": args.poll}
    elif any(v is not None for v in (args.partition, args.account, args.time, args.setup, args.poll)):
        raise WorkbenchError("--partition, --account, --time, --setup and --poll are for a Slurm machine",
                             hint="add it with --slurm LOGIN_HOST")
    result = wb.add_machine(args.name, ssh=args.ssh, identity=args.identity, hourly_cost=args.hourly_cost,
                            jump=args.jump, workdir=args.dir, slurm=slurm)
    if args.json:
        emit_json(result.to_json())
        return 0
    say(f"added machine {result.name} ({result.address})")
    if result.state == "host key unknown":
        say(f"  its host key is not known yet: {result.key_type} {result.fingerprint}")
        say(f"  check it, then: workbench machines trust {result.name}")
    elif result.state != "host key known":
        say(f"  not connected: {result.error or result.state}")
    return 0


def cmd_machines_remove(wb: Any, args: argparse.Namespace) -> int:
    wb.remove_machine(args.name)
    if args.json:
        emit_json({"removed": args.name})
    else:
        say(f"removed machine {args.name}")
    return 0


def _confirm(question: str) -> bool:
    say(question)
    try:
        return input("type yes to trust it: ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_machines_trust(wb: Any, args: argparse.Namespace) -> int:
    from workbench.services.machines import HostKeyNotTrusted

    try:
        result = wb.trust_machine(args.name, fingerprint=args.fingerprint,
                                  confirm=_confirm if sys.stdin.isatty() else None)
    except HostKeyNotTrusted as refused:
        if not sys.stdin.isatty():  # nobody could be asked: what to compare, and how to accept it without one
            say(f"{refused.name} presents {refused.key_type} {refused.fingerprint}; no terminal to confirm on: "
                f"compare it with the host's own (`ssh-keygen -lf` of its key there), then trust it with "
                f"`workbench machines trust {refused.name} --fingerprint {refused.fingerprint}`")
        raise
    if args.json:
        emit_json(result.to_json())
    elif result.already:
        say(f"{args.name}: {result.key_type} {result.fingerprint} is already trusted")
    else:
        say(f"{args.name}: trusted {result.key_type} {result.fingerprint}")
    return 0


def cmd_machines_stats(wb: Any, args: argparse.Namespace) -> int:
    stats = wb.machine_stats(args.name)
    if args.json:
        emit_json(stats.to_json())
        return 0
    load = " ".join(f"{x:.2f}" for x in stats.load) if stats.load else "n/a"
    memory = (f"{stats.memory_used / 2**30:.1f} / {stats.memory_total / 2**30:.1f} GiB"
              if stats.memory_total else "n/a")
    print(f"{stats.name}: {stats.cpus or 'n/a'} CPUs, load {load}, memory {memory}")
    for gpu in stats.gpus:
        def show(value: Any, unit: str = "") -> str:
            return "n/a" if value is None else f"{value:g}{unit}"
        mem_used = gpu.get("memory_used")
        mem_total = gpu.get("memory_total")
        mem = "n/a" if mem_used is None or mem_total is None else f"{mem_used / 2**20:.0f}/{mem_total / 2**20:.0f} MiB"
        print(f"  GPU{gpu['index']} {printable(str(gpu['name']))}  util {show(gpu.get('utilization'), '%')}  mem {mem}  "
              f"temp {show(gpu.get('temperature'), 'C')}  power {show(gpu.get('power'), 'W')}"
              f"/{show(gpu.get('power_limit'), 'W')}")
    if not stats.gpus:
        print(f"  no GPUs ({stats.gpu_error or 'none found'})")
    if stats.engine_asked:
        runtime = {True: "with the NVIDIA runtime", False: "without a GPU runtime", None: ""}[stats.gpu_runtime]
        print(f"  docker: {stats.docker or 'none'} {runtime}".rstrip())
    return 0


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    machines = sub.add_parser("machines", help="this workstation and SSH hosts").add_subparsers(
        dest="machines_command", metavar="ACTION", required=True)
    command(machines, "list", cmd_machines_list, "list machines")
    p = command(machines, "add", cmd_machines_add, "add an SSH host (its host key is shown, not trusted)")
    p.add_argument("name", help="a name for it (or a Host alias of ~/.ssh/config)")
    p.add_argument("--ssh", metavar="[USER@]HOST[:PORT]", help="where it is (default: NAME's ~/.ssh/config entry)")
    p.add_argument("--identity", metavar="FILE", help="private key file (default: ssh-agent, then ~/.ssh/id_*)")
    p.add_argument("--jump", metavar="[USER@]HOST[:PORT]", help="reach it through this host (ProxyJump)")
    p.add_argument("--hourly-cost", type=float, metavar="X", help="what an hour of it costs, for the fleet view")
    p.add_argument("--dir", metavar="PATH", help="Workbench's dir on the host (snapshots, runs; default ~/.workbench)"
                                                 "; for a Slurm cluster, on its shared file system")
    p.add_argument("--slurm", metavar="[USER@]LOGIN_HOST[:PORT]", help="a Slurm cluster reached through this login "
                                                                      "host: runs there are Slurm jobs")
    p.add_argument("--partition", help="Slurm: the partition jobs go to (default: the cluster's)")
    p.add_argument("--account", help="Slurm: the account jobs are charged to")
    p.add_argument("--time", help="Slurm: each job's time limit (e.g. 04:00:00)")
    p.add_argument("--setup", metavar="LINE", help="Slurm: a shell line run before each experiment "
                                                   "(e.g. 'module load cuda; source ~/venv/bin/activate')")
    p.add_argument("--poll", type=float, metavar="SECONDS", help="Slurm: seconds between squeue calls (default 30)")
    p = command(machines, "remove", cmd_machines_remove, "forget an SSH host")
    p.add_argument("name")
    p = command(machines, "trust", cmd_machines_trust, "trust the host key an SSH host presents (shown first)")
    p.add_argument("name")
    p.add_argument("--fingerprint", metavar="SHA256:...", help="for scripts: trust only a key with this fingerprint")
    p = command(machines, "stats", cmd_machines_stats, "one telemetry sample of a machine")
    p.add_argument("name")
