"""The deployment watcher: one detached process per data dir (`workbench _watch_deployments`, by the lease
`deployment-watcher`), started whenever a deployment is live and none holds the lease (by `deploy`, by
`deployments list|show`, by any command's reconcile pass: after a reboot, or once the workstation wakes),
and gone when nothing is live. Every second it reads each live deployment's proxy counters (Caddy's
metrics listener inside the proxy, never published) and asks the live version's health path, as the
proxy's active check does (a version out of rotation is an event, with no command run), keeps a sample
every few seconds ("the last minute" in `deployments show`), brings back what went away (a stopped
version or proxy, through the deployment's reconcile), and judges canaries (services/deploy_canary.py).

While no watcher runs (the workstation asleep), a canary is held at its share by the proxy's config; the
next command says so and starts one again, which then decides from the counters since the canary began."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from workbench.serving import serving, traffic
from workbench.services.context import Services, first_line, start_detached
from workbench.services.deploy_base import Target, get_record, read_counters
from workbench.services.deploy_canary import judge
from workbench.services.deploy_reconcile import live_health, reconcile
from workbench.store.leases import LeaseKeeper, new_owner, owner_gone

LEASE = "deployment-watcher"
LEASE_TTL, LEASE_RENEW = 10.0, 2.0
TICK = 1.0              # how often each deployment's proxy is read
SAMPLE_EVERY = 5.0      # a sample of its counters is kept this often
RECONCILE_EVERY = 15.0  # a healthy deployment is reconciled this often (a failing one every few ticks)
FAILING_RECONCILE = 3.0
ERROR_WINDOW = 10.0     # the live version's 5xx share is judged over about this many seconds ...
ERROR_MIN_REQUESTS = 20  # ... once this many requests reached it: over ERRORING, its health reads "errors"
ERRORING, RECOVERED = 50.0, 5.0


def watched(wb: Services) -> list[dict[str, Any]]:
    return [d for d in wb.store.deployments() if d["status"] == "live" or d.get("canary")]


def watcher_alive(wb: Services) -> bool:
    holder = wb.store.lease_holder(LEASE)
    return bool(holder) and not owner_gone(holder)


def ensure_watcher(wb: Services) -> list[str]:
    """A detached watcher, unless one holds the lease or nothing is live; the lease of one that was killed is
    freed here. Returns what to say: each canary that was held with no watcher to judge it."""
    if wb.store.live_lease_holder(LEASE):
        return []
    records = watched(wb)
    if not records:
        return []
    notes = [note for note in (canary_note(wb, r, alive=False) for r in records) if note]
    start_detached(wb, ["_watch_deployments"], wb.dirs.data / "watcher.err")
    return notes


def canary_note(wb: Services, record: dict[str, Any], alive: bool | None = None) -> str | None:
    """Said of a canary no watcher judges: held at its share since the last look."""
    c = record.get("canary")
    if not c:
        return None
    if alive is None:
        alive = watcher_alive(wb)
    if alive and time.time() - c.get("watched_at", c["started"]) < 3 * SAMPLE_EVERY:
        return None
    since = time.strftime("%H:%M:%S", time.localtime(c.get("watched_at") or c["started"]))
    late = " (its window is over: the verdict comes at the watcher's first look)" if time.time() > c["until"] else ""
    return (f"{record['name']}: canary v{c['version']} held at {c['share']}% since {since}: no watcher judged it "
            f"(was this workstation asleep?); a watcher is started again{late}")


@dataclass
class _Seen:
    sampled: float = 0.0
    reconciled: float = 0.0
    failed: str | None = None  # the last failure said, so it is recorded once
    erroring: tuple[str, float, int] | None = None  # (live container, its 5xx %, requests) over ERROR_WINDOW
    asker: "HealthAsker | None" = None


def watch(wb: Services, idle_exit: bool = True) -> None:
    """Watches until nothing is live (returns at once when another watcher holds the lease)."""
    owner = new_owner()
    if not wb.store.acquire_lease(LEASE, owner, LEASE_TTL):
        return
    keeper = LeaseKeeper(wb.store, LEASE, owner, LEASE_TTL, LEASE_RENEW)
    seen: dict[str, _Seen] = {}
    targets: dict[str, Target] = {}
    try:
        while not keeper.lost.is_set() and wb.dirs.db_path.exists():  # a data dir deleted: nothing to watch for
            try:
                records = watched(wb)
            except Exception:  # noqa: BLE001 - a locked or busy database: the next tick reads it again
                time.sleep(TICK)
                continue
            if not records and idle_exit:
                return
            for record in records:
                memo = seen.setdefault(record["name"], _Seen())
                try:
                    target = targets.get(record["machine"]) or Target(wb, record["machine"])
                    targets[record["machine"]] = target
                    look(wb, target, record, memo)
                    memo.failed = None
                except Exception as exc:  # noqa: BLE001 - one deployment's machine must not stop the others
                    targets.pop(record["machine"], None)
                    wb.executors.forget_machine(record["machine"])
                    said = first_line(exc)
                    if said != memo.failed:
                        memo.failed = said
                        wb.store.add_deployment_event(record["name"], "watch", f"{record['name']}: the watcher "
                                                      f"cannot read {record['machine']}: {said}")
            time.sleep(TICK)
    finally:
        keeper.stop()
        wb.store.release_lease(LEASE, owner)


def _error_share(wb: Services, record: dict[str, Any], servers: dict[str, traffic.Counters],
                 now: float) -> tuple[float, int] | None:
    """The live version's 5xx share (percent) and request count since the watcher's sample of about
    ERROR_WINDOW seconds ago; None with too few requests to tell (or no such sample)."""
    earlier = wb.store.traffic_sample_before(record["name"], now - ERROR_WINDOW)
    server = f"v{record['live_version']}"
    if earlier is None or now - earlier[0] > 3 * ERROR_WINDOW or server not in servers:
        return None
    then = (earlier[1].get("servers") or {}).get(server)
    delta = traffic.since(servers[server], traffic.from_json(then) if then else None)
    if delta.requests < ERROR_MIN_REQUESTS:
        return None
    return 100.0 * delta.errors / delta.requests, delta.requests


class HealthAsker:
    """Asks a version's health path at its remembered address (port and path from its labels): an engine
    call only when that does not answer 200 (a restart moved it, or it is down: then it is looked up)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.known: dict[str, tuple[str, int, str]] = {}

    def __call__(self, container_name: str | None) -> tuple[str, str]:
        known = self.known.get(container_name or "")
        if known and self.target.probe(*known) == 200:
            return "ok", ""
        container = serving.get(self.target.client, container_name) if container_name else None
        health, why = live_health(self.target, container)
        where = serving.address(container) if container is not None else None
        if container is not None and where:
            self.known[container.name] = (where, int(container.labels.get("workbench.port", "8000")),
                                          serving.health_path(container))
        return health, why


def look(wb: Services, target: Target, record: dict[str, Any], memo: _Seen) -> None:
    name = record["name"]
    now = time.time()
    try:
        servers = read_counters(wb, target, record)
    except Exception:  # noqa: BLE001 - the proxy is gone or stopped: reconcile brings it back
        if now - memo.reconciled >= FAILING_RECONCILE:
            memo.reconciled = now
            reconcile(wb, record)
        return
    if now - memo.sampled >= SAMPLE_EVERY:
        memo.sampled = now
        share = _error_share(wb, record, servers, now)
        memo.erroring = (record["live_container"], *share) if share else None
        wb.store.add_traffic_sample(name, traffic.snapshot(servers, now))
        if record.get("canary"):
            wb.store.touch_canary(name, record["canary"]["container"], now)
    asker = memo.asker if memo.asker is not None and memo.asker.target is target else HealthAsker(target)
    memo.asker = asker
    health, why = asker(record["live_container"])
    version = record["live_version"]
    if health == "ok" and memo.erroring is not None and memo.erroring[0] == record["live_container"]:
        _, share, requests = memo.erroring
        if share > ERRORING or (record.get("health") == "errors" and share > RECOVERED):
            health, why = "errors", f"answers 5xx to {share:.0f}% of its requests ({requests:,} in the last " \
                                    f"{ERROR_WINDOW:.0f} s) while its health path says 200"
    elif health == "ok" and record.get("health") == "errors":
        health = "errors"  # too few requests lately to tell it recovered
    if wb.store.set_health(name, health):
        said = {"ok": "is healthy again: the proxy sends it requests, and they succeed",
                "errors": why,
                "failing": f"failed its health check{why}: out of the proxy's rotation, callers get 503"}[health]
        wb.store.add_deployment_event(name, "health", f"{name}: v{version} {said}", to_version=version, health=health)
    fresh = get_record(wb, name)
    if fresh.get("canary") and judge(wb, target, fresh, servers, asker):
        return  # decided: the next tick looks at what serves now
    every = FAILING_RECONCILE if health == "failing" else RECONCILE_EVERY
    if now - memo.reconciled >= every:
        memo.reconciled = now
        reconcile(wb, get_record(wb, name))  # a stopped version started again, a moved one re-pointed
