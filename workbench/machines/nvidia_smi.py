"""nvidia-smi's CSV (`--query-gpu=... --format=csv,noheader,nounits`): `[N/A]` and `[Not Supported]` are
missing values, never 0."""

from __future__ import annotations

from dataclasses import dataclass

QUERY_FIELDS = ("index", "uuid", "name", "memory.total", "memory.used", "utilization.gpu", "temperature.gpu",
                "power.draw", "power.limit", "fan.speed", "mig.mode.current", "driver_version")
QUERY_ARGS = ["nvidia-smi", f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits"]
MISSING = {"[N/A]", "[Not Supported]", "N/A", "[Unknown Error]", ""}
MIB = 1 << 20


@dataclass
class GpuReading:
    """One GPU as NVML or nvidia-smi reports it; None is a field the GPU does not report (n/a)."""
    index: int
    uuid: str
    name: str
    memory_total: int | None = None
    memory_used: int | None = None
    utilization: float | None = None
    temperature: float | None = None
    power: float | None = None
    power_limit: float | None = None
    fan: float | None = None
    mig: str | None = None
    driver: str | None = None
    processes: list[dict] | None = None  # (pid, name, memory) where the source reports them

    @property
    def busy(self) -> bool:
        """A GPU someone is using: processes on it, more than a tenth of its memory taken, or more than a
        fifth of its compute busy."""
        if self.processes:
            return True
        if self.utilization is not None and self.utilization > 20:
            return True
        if self.memory_used is not None and self.memory_total:
            return self.memory_used / self.memory_total > 0.1
        return False


def _number(text: str) -> float | None:
    text = text.strip()
    if text in MISSING:
        return None
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None


def _text(text: str) -> str | None:
    text = text.strip()
    return None if text in MISSING else text


def parse_query_line(line: str) -> GpuReading | None:
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != len(QUERY_FIELDS) or not parts[0].isdigit():
        return None
    values = dict(zip(QUERY_FIELDS, parts))
    total, used = _number(values["memory.total"]), _number(values["memory.used"])
    return GpuReading(
        index=int(values["index"]), uuid=values["uuid"], name=values["name"],
        memory_total=None if total is None else int(total * MIB),
        memory_used=None if used is None else int(used * MIB),
        utilization=_number(values["utilization.gpu"]), temperature=_number(values["temperature.gpu"]),
        power=_number(values["power.draw"]), power_limit=_number(values["power.limit"]),
        fan=_number(values["fan.speed"]), mig=_text(values["mig.mode.current"]), driver=_text(values["driver_version"]),
    )


APPS_FIELDS = ("gpu_uuid", "pid", "process_name", "used_memory")
APPS_ARGS = ["nvidia-smi", f"--query-compute-apps={','.join(APPS_FIELDS)}", "--format=csv,noheader,nounits"]


def parse_apps(text: str) -> dict[str, list[dict]]:
    """GPU uuid -> its compute processes (pid, name, memory in bytes or None)."""
    out: dict[str, list[dict]] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(APPS_FIELDS) or not parts[1].isdigit():
            continue
        memory = _number(parts[3])
        out.setdefault(parts[0], []).append({"pid": int(parts[1]), "name": parts[2],
                                             "memory": None if memory is None else int(memory * MIB)})
    return out


def parse_query(text: str) -> list[GpuReading]:
    return [r for r in (parse_query_line(line) for line in text.splitlines()) if r is not None]
