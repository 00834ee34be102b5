"""workbench.toml: load, validate, and resolve an experiment's params into argv and environment."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from workbench.errors import SpecError, WorkbenchError
from workbench.projects.checks import Check, parse_check
from workbench.projects.locate import locate
from workbench.projects.sensitive import sensitive_mount_reason
from workbench.redaction import is_secret_name, is_secret_param

SPEC_FILE = "workbench.toml"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_NAME = PARAM_NAME
SIZE = re.compile(r"^\d+(?:\.\d+)?\s*[bkmgBKMG]?$")
SweepValue = int | float | str | bool
# Placeholders every experiment command may use beside its params: the run's output dir as the program sees
# it (each executor puts in its own path, /wb/out in a container) and the run's id. No param may take these names.
RESERVED_PLACEHOLDERS = ("output", "run_id")


@dataclass(frozen=True)
class Mount:
    source: str  # absolute host path, ~ expanded
    target: str
    read_only: bool

    @property
    def text(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


@dataclass
class Experiment:
    name: str
    command: list[str]
    image: str | None = None
    dockerfile: str | None = None
    params: dict[str, SweepValue] = field(default_factory=dict)
    gpus: int = 0
    env: dict[str, str] = field(default_factory=dict)
    # name -> the workstation variable it is read from at each launch (`{ from_env = "NAME" }`): never stored
    env_from: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    shm_size: str | None = None
    memory: str | None = None
    cpus: int | None = None                      # CPUs it needs: a container's --cpus, a Slurm job's --cpus-per-task
    user: str | None = None
    allow_sensitive_mounts: bool = False
    artifacts: list[str] = field(default_factory=list)
    sweep: dict[str, Any] = field(default_factory=dict)  # param -> [values], or {low, high, log} (random, tpe)
    sweep_method: str = "grid"
    sweep_samples: int | None = None
    sweep_options: dict[str, Any] = field(default_factory=dict)  # objective, direction, trials, max_parallel, ...
    checks: list[Check] = field(default_factory=list)
    machine: str | None = None                   # where it runs: a machine's name, or "auto"
    machines: list[str] = field(default_factory=list)  # or: any of these, chosen at launch (placement)
    setup: str | None = None                     # a shell line run before the command in a Slurm job
    notebook: str | None = None                  # a notebook run: the .ipynb (relative to the project) executed
                                                 # by the runner (`command` is then NOTEBOOK_COMMAND + [notebook])

    @property
    def executed_notebook(self) -> str | None:
        """Where a notebook run keeps the notebook it executed, with its outputs: a path in its output dir."""
        return PurePosixPath(self.notebook).name if self.notebook else None


@dataclass(frozen=True)
class Smoke:
    """A request a new version must answer as expected before it gets traffic: POST with a body, else GET."""
    path: str
    body: bytes | None = None
    expect_status: int = 200
    expect_json_keys: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        return "GET" if self.body is None else "POST"


@dataclass
class Watch:
    run: str
    paths: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    on_busy: str = "restart"


@dataclass
class Deploy:
    command: list[str]
    image: str | None = None
    dockerfile: str | None = None
    health: str = "/health"
    port: int = 8000                  # the port the server listens on inside its container
    env: dict[str, str] = field(default_factory=dict)
    gpus: int = 0
    timeout: int = 300                # seconds a new version has to answer its health path with 200
    smoke: Smoke | None = None        # a request the new version must pass, beside its health, before traffic
    bind: str = "0.0.0.0"             # the address the endpoint listens on ("127.0.0.1": this machine only)
    auth: str = "none"                # or "token": callers send Authorization: Bearer <token>
    memory: int | None = None         # the model container's memory limit, in bytes
    read_only: bool = True            # the model container's root file system (a writable tmpfs at /tmp)


@dataclass
class ProjectSpec:
    name: str
    root: Path
    exclude: list[str]
    experiments: dict[str, Experiment]
    watch: Watch | None = None
    deploy: Deploy | None = None

    @property
    def spec_path(self) -> Path:
        return self.root / SPEC_FILE

    def experiment(self, name: str | None) -> Experiment:
        if name is None:
            if len(self.experiments) == 1:
                return next(iter(self.experiments.values()))
            raise SpecError(
                f"{self.spec_path}: several experiments ({', '.join(self.experiments)}); choose one with -e NAME"
            )
        try:
            return self.experiments[name]
        except KeyError:
            raise SpecError(
                f"{self.spec_path}: no experiment {name!r}; it declares: {', '.join(self.experiments) or 'none'}"
            ) from None


# ---------------------------------------------------------------------------------------------------
class _Validator:
    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source

    def fail(self, key: tuple[str, ...], problem: str) -> SpecError:
        line = locate(self.source, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return SpecError(f"{where}: {'.'.join(key) or 'top level'}: {problem}")

    def table(self, value: Any, key: tuple[str, ...], allowed: set[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_kind(value)}")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    raise self.fail(key + (name,), f"unknown key (allowed here: {', '.join(sorted(allowed))})")
        return value

    def string(self, value: Any, key: tuple[str, ...], *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.fail(key, f"expected a non-empty string, got {_kind(value)}")
        return value

    def strings(self, value: Any, key: tuple[str, ...], *, nonempty: bool = False) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of strings, got {_kind(value)}")
        if nonempty and not value:
            raise self.fail(key, "must not be empty")
        return value

    def integer(self, value: Any, key: tuple[str, ...], minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {_kind(value)}")
        return value

    def size(self, value: Any, key: tuple[str, ...]) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not SIZE.match(value):
            raise self.fail(key, f"expected a size such as \"2g\" or \"512m\", got {_kind(value)}")
        return value.replace(" ", "").lower()


def size_bytes(size: str) -> int:
    """A size as the spec validated it ("512m", "1.5g", "100": bytes, 1024-based as Docker reads it)."""
    number, unit = (size[:-1], size[-1]) if size[-1:].isalpha() else (size, "b")
    return int(float(number) * 1024 ** "bkmg".index(unit.lower()))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


# A notebook run's command: the runner shipped in workbench/runtime/ (on every run's PYTHONPATH) executes the
# notebook with nbclient, its params injected papermill-style, into $WORKBENCH_OUTPUT/<its file name>.
NOTEBOOK_RUNNER = "workbench_nbrun"
NOTEBOOK_COMMAND = ["python3", "-m", NOTEBOOK_RUNNER]

EXPERIMENT_KEYS = {
    "image", "dockerfile", "command", "notebook", "params", "gpus", "env", "mounts", "shm_size", "memory", "cpus", "user",
    "artifacts", "sweep", "checks", "allow_sensitive_mounts", "machine", "machines", "setup",
}


def _image_source(v: _Validator, table: dict[str, Any], key: tuple[str, ...]) -> tuple[str | None, str | None]:
    image = v.string(table["image"], key + ("image",)) if "image" in table else None
    dockerfile = v.string(table["dockerfile"], key + ("dockerfile",)) if "dockerfile" in table else None
    if bool(image) == bool(dockerfile):
        raise v.fail(key, "set exactly one of `image` or `dockerfile`")
    return image, dockerfile


def _placeholders(v: _Validator, argv: list[str], key: tuple[str, ...], known: set[str],
                  builtin: tuple[str, ...] = ()) -> None:
    for index, item in enumerate(argv):
        for name in PLACEHOLDER.findall(item):
            if name not in known and name not in builtin:
                also = f"; built in: {', '.join('{' + b + '}' for b in builtin)}" if builtin else ""
                raise v.fail(key, f"item {index} uses {{{name}}}, which is not a declared param "
                                  f"(declared: {', '.join(sorted(known)) or 'none'}{also})")


def _experiment(v: _Validator, name: str, raw: Any, root: Path) -> Experiment:
    key = ("experiments", name)
    if not NAME.match(name):
        raise v.fail(key, "experiment names use letters, digits, '.', '_' and '-' only")
    table = v.table(raw, key, EXPERIMENT_KEYS)
    image, dockerfile = _image_source(v, table, key)
    if dockerfile and not (root / dockerfile).is_file():
        raise v.fail(key + ("dockerfile",), f"{dockerfile} does not exist in {root}")
    notebook = _notebook(v, table, key, root)
    if notebook is None and "command" not in table:
        raise v.fail(key, "missing `command` (the argv list to run) or `notebook` (an .ipynb to execute)")
    command = NOTEBOOK_COMMAND + [notebook] if notebook else v.strings(table["command"], key + ("command",), nonempty=True)

    params: dict[str, SweepValue] = {}
    for pname, value in v.table(table.get("params", {}), key + ("params",), None).items():
        if not PARAM_NAME.match(pname):
            raise v.fail(key + ("params", pname), "param names are letters, digits and _ (not starting with a digit)")
        if pname in RESERVED_PLACEHOLDERS:
            raise v.fail(key + ("params", pname), f"{pname!r} is reserved: {{{pname}}} in a command is "
                                                  + ("the run's output dir" if pname == "output" else "the run's id")
                                                  + "; give the param another name")
        if is_secret_param(pname):
            raise v.fail(key + ("params", pname), "looks like a secret: params are recorded in the history and "
                                                  "shown; pass secrets through `env` (redacted) instead")
        if not isinstance(value, (int, float, str, bool)):
            raise v.fail(key + ("params", pname), f"a param is a string, number or boolean, got {_kind(value)}")
        params[pname] = value
    _placeholders(v, command, key + ("command",), set(params), RESERVED_PLACEHOLDERS)

    env, env_from = _env(v, table, key, from_env=True)

    allow_sensitive = table.get("allow_sensitive_mounts", False)
    if not isinstance(allow_sensitive, bool):
        raise v.fail(key + ("allow_sensitive_mounts",), f"expected true or false, got {_kind(allow_sensitive)}")
    mounts = [_mount(v, m, key + ("mounts",), allow_sensitive)
              for m in v.strings(table.get("mounts", []), key + ("mounts",))]
    user = v.string(table["user"], key + ("user",)) if "user" in table else None
    artifacts = [_artifact(v, a, key + ("artifacts",))
                 for a in v.strings(table.get("artifacts", []), key + ("artifacts",))]
    executed = PurePosixPath(table["notebook"]).name if isinstance(table.get("notebook"), str) else None
    if executed and executed not in artifacts:
        artifacts.append(executed)  # the executed notebook comes back from any machine, like a declared artifact

    sweep, sweep_options = _sweep(v, table.get("sweep", {}), key + ("sweep",), params)
    method, samples = sweep_options.pop("method"), sweep_options.pop("samples")

    checks = []
    for metric, expression in v.table(table.get("checks", {}), key + ("checks",), None).items():
        ckey = key + ("checks", metric)
        try:
            checks.append(parse_check(metric, v.string(expression, ckey)))
        except ValueError as exc:
            raise v.fail(ckey, str(exc)) from None

    machine = v.string(table["machine"], key + ("machine",)) if "machine" in table else None
    machines = v.strings(table.get("machines", []), key + ("machines",))
    if machine is not None and machines:
        raise v.fail(key, "set `machine` or `machines`, not both")
    if "machines" in table and not machines:
        raise v.fail(key + ("machines",), "expected at least one machine name")
    for where in ([machine] if machine else []) + machines:
        if where != "auto" and not NAME.match(where):
            raise v.fail(key + ("machines" if machines else "machine",), f"{where!r} is not a machine name")
    if "auto" in machines:
        raise v.fail(key + ("machines",), "list machine names; for any machine, use machine = \"auto\"")

    return Experiment(
        name=name, command=command, image=image, dockerfile=dockerfile, params=params, machine=machine,
        machines=machines,
        gpus=v.integer(table.get("gpus", 0), key + ("gpus",)), env=env, env_from=env_from, mounts=mounts,
        shm_size=v.size(table["shm_size"], key + ("shm_size",)) if "shm_size" in table else None,
        memory=v.size(table["memory"], key + ("memory",)) if "memory" in table else None,
        cpus=v.integer(table["cpus"], key + ("cpus",), minimum=1) if "cpus" in table else None,
        user=user, allow_sensitive_mounts=allow_sensitive, artifacts=artifacts,
        sweep=sweep, sweep_method=method, sweep_samples=samples, sweep_options=sweep_options, checks=checks,
        setup=_setup(v, table, key), notebook=notebook,
    )


def _notebook(v: _Validator, table: dict[str, Any], key: tuple[str, ...], root: Path) -> str | None:
    if "notebook" not in table:
        return None
    if "command" in table:
        raise v.fail(key, "set `command` or `notebook`, not both (a notebook run's command is the runner's)")
    text = v.string(table["notebook"], key + ("notebook",))
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts or text.startswith("~") or path.suffix != ".ipynb":
        raise v.fail(key + ("notebook",), f"{text!r}: expected an .ipynb path inside the project, like \"train.ipynb\"")
    if not (root / text).is_file():
        raise v.fail(key + ("notebook",), f"{text} does not exist in {root}")
    return path.as_posix()


def _setup(v: _Validator, table: dict[str, Any], key: tuple[str, ...]) -> str | None:
    if "setup" not in table:
        return None
    line = v.string(table["setup"], key + ("setup",))
    if "\n" in line or "\r" in line or not line.strip():
        raise v.fail(key + ("setup",), "one bash line, e.g. \"module load cuda\" or \"source ~/venvs/x/bin/activate\"")
    return line


SWEEP_METHODS = ("grid", "random", "tpe")


def _sweep(v: _Validator, raw: Any, key: tuple[str, ...], params: dict[str, SweepValue]
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """`[experiments.X.sweep]`: the space (param = [values], or = { low, high, log } for random and tpe) and
    its options. Everything a sweep needs is checked here, so `workbench sweep` never starts a broken one."""
    options: dict[str, Any] = {"method": "grid", "samples": None, "objective": None, "direction": "maximize",
                               "trials": None, "max_parallel": 4, "prune": None, "budget": None}
    space: dict[str, Any] = {}
    table = v.table(raw, key, None)
    for name, value in table.items():
        skey = key + (name,)
        if name == "method":
            if value not in SWEEP_METHODS:
                raise v.fail(skey, f"expected one of {', '.join(repr(m) for m in SWEEP_METHODS)}")
            options["method"] = value
        elif name in ("samples", "trials", "max_parallel"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise v.fail(skey, f"must be a whole number of at least 1, got {value!r}")
            options[name] = value
        elif name == "objective":
            options["objective"] = v.string(value, skey)
        elif name == "direction":
            if value not in ("maximize", "minimize"):
                raise v.fail(skey, 'expected "maximize" or "minimize"')
            options["direction"] = value
        elif name == "prune":
            if value != "median":
                raise v.fail(skey, 'expected "median" (stop a trial below the median of earlier ones at a step)')
            options["prune"] = value
        elif name == "budget":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise v.fail(skey, f"a budget is a positive amount, got {value!r}")
            options["budget"] = float(value)
        elif name not in params:
            raise v.fail(skey, f"not a declared param (declared: {', '.join(params) or 'none'})")
        elif isinstance(value, dict):
            space[name] = _range(v, skey, params[name], value)
        elif not isinstance(value, list) or not value:
            raise v.fail(skey, f"expected a non-empty array of values, got {_kind(value)}")
        else:
            space[name] = [_typed(v, skey, params[name], item) for item in value]
    if not table:
        return {}, options
    method = options["method"]
    if not space:
        raise v.fail(key, "sweeps no param: give at least one declared param its values")
    if method == "grid" and any(isinstance(s, dict) for s in space.values()):
        raise v.fail(key, "a grid needs a list of values for each param; ranges are for method = \"random\" or \"tpe\"")
    if method == "random" and options["samples"] is None and any(isinstance(s, dict) for s in space.values()):
        raise v.fail(key, "method = \"random\" over a range needs `samples = N`")
    if method == "tpe":
        if not options["objective"]:
            raise v.fail(key, "method = \"tpe\" needs `objective = \"metric\"` (and `direction`)")
        if options["trials"] is None:
            raise v.fail(key, "method = \"tpe\" needs `trials = N`")
    if options["prune"] and not options["objective"]:
        raise v.fail(key, "prune = \"median\" needs `objective = \"metric\"`")
    return space, options


def _range(v: _Validator, key: tuple[str, ...], default: SweepValue, raw: dict[str, Any]) -> dict[str, Any]:
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        raise v.fail(key, f"a range needs a number param; this one is {_kind(default)}: list its values instead")
    unknown = set(raw) - {"low", "high", "log"}
    if unknown or "low" not in raw or "high" not in raw:
        raise v.fail(key, "a range is { low = N, high = N } (optionally log = true)")
    low, high = (_typed(v, key + (bound,), default, raw[bound]) for bound in ("low", "high"))
    if not low < high:  # type: ignore[operator]
        raise v.fail(key, f"low must be below high, got {low} and {high}")
    log = raw.get("log", False)
    if not isinstance(log, bool) or (log and low <= 0):  # type: ignore[operator]
        raise v.fail(key + ("log",), "log = true needs low > 0" if isinstance(log, bool) else "expected true or false")
    return {"low": low, "high": high, "log": log, "int": isinstance(default, int)}


def _typed(v: _Validator, key: tuple[str, ...], default: SweepValue, value: Any) -> SweepValue:
    kind = type(default)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise v.fail(key, f"{_kind(value)} does not match the param's type ({kind.__name__})")
    return value


def _artifact(v: _Validator, text: str, key: tuple[str, ...]) -> str:
    """An artifact is a path inside the run's output dir: relative, without `..`, never absolute."""
    path = PurePosixPath(text)
    if not text.strip() or path.is_absolute() or text.startswith("~") or ".." in path.parts or "\0" in text:
        raise v.fail(key, f"artifact {text!r} must be a relative path inside the output dir "
                          "(no leading /, ~ or ..)")
    if path.as_posix() in (".", ""):
        raise v.fail(key, f"artifact {text!r} names the output dir itself; name a file or folder in it")
    return path.as_posix()


def _mount(v: _Validator, text: str, key: tuple[str, ...], allow_sensitive: bool = False) -> Mount:
    parts = text.split(":")
    mode = "rw"
    if len(parts) == 3:
        mode = parts.pop()
    if len(parts) != 2 or mode not in ("ro", "rw") or not parts[0] or not parts[1].startswith("/"):
        raise v.fail(key, f"mount {text!r} is not HOST:CONTAINER[:ro|rw] with an absolute container path")
    source = os.path.expanduser(parts[0])
    if not os.path.isabs(source):
        raise v.fail(key, f"mount {text!r}: the host path must be absolute or start with ~")
    danger = None if allow_sensitive else sensitive_mount_reason(source)
    if danger:
        raise v.fail(key, f"mount {text!r} would give the container {danger}; refused "
                          "(set allow_sensitive_mounts = true in this experiment if you really mean it)")
    return Mount(source=source, target=parts[1], read_only=mode == "ro")


def load_spec(folder: str | os.PathLike[str]) -> ProjectSpec:
    root = Path(folder).expanduser()
    if not root.exists():
        raise SpecError(f"{root}: no such folder")
    root = root.resolve()
    path = root / SPEC_FILE
    if not path.is_file():
        raise SpecError(f"{path}: not found; a project folder needs a {SPEC_FILE} (see README: Project spec)")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: TOML syntax error: {exc}") from None

    v = _Validator(path, source)
    v.table(data, (), {"project", "experiments", "watch", "deploy"})
    project = v.table(data.get("project", {}), ("project",), {"name", "exclude"})
    name = v.string(project["name"], ("project", "name")) if "name" in project else root.name
    if not NAME.match(name):
        raise v.fail(("project", "name"), "use letters, digits, '.', '_' and '-' only")
    exclude = v.strings(project.get("exclude", []), ("project", "exclude"))

    experiments = {
        ename: _experiment(v, ename, raw, root)
        for ename, raw in v.table(data.get("experiments", {}), ("experiments",), None).items()
    }
    if not experiments:
        raise v.fail(("experiments",), "declare at least one [experiments.NAME] table")

    watch = None
    if "watch" in data:
        w = v.table(data["watch"], ("watch",), {"run", "paths", "ignore", "on_busy"})
        run = v.string(w.get("run", ""), ("watch", "run"))
        if run not in experiments:
            raise v.fail(("watch", "run"), f"no experiment {run!r} (declared: {', '.join(experiments)})")
        on_busy = w.get("on_busy", "restart")
        if on_busy not in ("restart", "queue"):
            raise v.fail(("watch", "on_busy"), f"expected \"restart\" or \"queue\", got {_kind(on_busy)}")
        watch = Watch(run=run, paths=v.strings(w.get("paths", []), ("watch", "paths")),
                      ignore=v.strings(w.get("ignore", []), ("watch", "ignore")), on_busy=on_busy)

    deploy = _deploy(v, data["deploy"], root) if "deploy" in data else None

    return ProjectSpec(name=name, root=root, exclude=exclude, experiments=experiments, watch=watch, deploy=deploy)


DEPLOY_KEYS = {"image", "dockerfile", "command", "health", "port", "env", "gpus", "timeout", "smoke", "bind", "auth",
               "memory", "read_only"}
SMOKE_KEYS = {"path", "body", "body_file", "expect_status", "expect_json_keys"}
SMOKE_BODY_LIMIT = 1024 * 1024
DOCKER_MIN_MEMORY = 6 * 1024 * 1024  # the engine refuses a smaller limit


def _deploy(v: _Validator, raw: Any, root: Path) -> Deploy:
    key = ("deploy",)
    d = v.table(raw, key, DEPLOY_KEYS)
    image, dockerfile = _image_source(v, d, key)
    command = v.strings(d.get("command"), key + ("command",), nonempty=True)
    _placeholders(v, command, key + ("command",), {"model", "port"})
    health = _url_path(v, d.get("health", "/health"), key + ("health",))
    auth = d.get("auth", "none")
    if auth not in ("none", "token"):
        raise v.fail(key + ("auth",), f"expected \"token\" (callers send Authorization: Bearer <token>) or "
                                      f"\"none\", got {_kind(auth)}")
    read_only = d.get("read_only", True)
    if not isinstance(read_only, bool):
        raise v.fail(key + ("read_only",), f"expected true or false, got {_kind(read_only)}")
    return Deploy(command=command, image=image, dockerfile=dockerfile, health=health,
                  port=v.integer(d.get("port", 8000), key + ("port",), minimum=1),
                  env=_env(v, d, key)[0],
                  gpus=v.integer(d.get("gpus", 0), key + ("gpus",)),
                  timeout=v.integer(d.get("timeout", 300), key + ("timeout",), minimum=1),
                  smoke=_smoke(v, d["smoke"], key + ("smoke",), root) if "smoke" in d else None,
                  bind=_bind(v, d.get("bind", "0.0.0.0"), key + ("bind",)), auth=auth,
                  memory=_memory(v, d["memory"], key + ("memory",)) if "memory" in d else None,
                  read_only=read_only)


def _url_path(v: _Validator, value: Any, key: tuple[str, ...]) -> str:
    path = v.string(value, key)
    if not path.startswith("/") or any(c.isspace() or not c.isprintable() for c in path):
        raise v.fail(key, f"expected a URL path starting with / (no spaces), got {_kind(path)}")
    return path


def _smoke(v: _Validator, raw: Any, key: tuple[str, ...], root: Path) -> Smoke:
    """`smoke = { path, body | body_file, expect_status, expect_json_keys }`: POST with a body, else GET."""
    table = v.table(raw, key, SMOKE_KEYS)
    if "path" not in table:
        raise v.fail(key, 'missing `path` (the URL path to ask, e.g. "/predict")')
    if "body" in table and "body_file" in table:
        raise v.fail(key, "set `body` or `body_file`, not both")
    body = None
    if "body" in table:
        body = v.string(table["body"], key + ("body",), empty=True).encode()
        if len(body) > SMOKE_BODY_LIMIT:
            raise v.fail(key + ("body",), f"is {len(body):,} bytes; a smoke body is at most 1 MiB")
    elif "body_file" in table:
        body = _body_file(v, table["body_file"], key + ("body_file",), root)
    status = table.get("expect_status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise v.fail(key + ("expect_status",), f"expected an HTTP status from 100 to 599, got {_kind(status)}")
    keys = v.strings(table.get("expect_json_keys", []), key + ("expect_json_keys",))
    if any(not k for k in keys):
        raise v.fail(key + ("expect_json_keys",), "a key name must not be empty")
    return Smoke(path=_url_path(v, table["path"], key + ("path",)), body=body, expect_status=status,
                 expect_json_keys=tuple(keys))


def _body_file(v: _Validator, value: Any, key: tuple[str, ...], root: Path) -> bytes:
    name = v.string(value, key)
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("~") or ".." in path.parts or "\0" in name:
        raise v.fail(key, f"{name!r} must be a path inside the project (relative, no leading /, ~ or ..)")
    file = root / path
    try:
        if not file.is_file():
            raise v.fail(key, f"{name} is not a file in {root}")
        size = file.stat().st_size
        if size > SMOKE_BODY_LIMIT:
            raise v.fail(key, f"{name} is {size:,} bytes; a smoke body is at most 1 MiB")
        return file.read_bytes()
    except OSError as exc:
        raise v.fail(key, f"cannot read {name}: {exc.strerror or exc}") from None


def _bind(v: _Validator, value: Any, key: tuple[str, ...]) -> str:
    text = v.string(value, key)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise v.fail(key, f"expected an IP address (\"0.0.0.0\": all addresses, \"127.0.0.1\": this machine "
                          f"only), got {_kind(text)}") from None


def _memory(v: _Validator, value: Any, key: tuple[str, ...]) -> int:
    amount = size_bytes(v.size(value, key))
    if amount < DOCKER_MIN_MEMORY:
        raise v.fail(key, f"{amount:,} bytes is below Docker's smallest memory limit (6m)")
    return amount


# ---------------------------------------------------------------------------------------------------
def parse_overrides(experiment: Experiment, pairs: list[str], where: str) -> dict[str, SweepValue]:
    """`-p name=value` items, each checked against the declared params and converted to the declared type."""
    out: dict[str, SweepValue] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SpecError(f"-p {pair!r}: expected NAME=VALUE")
        if name not in experiment.params:
            declared = ", ".join(f"{k} ({type(d).__name__})" for k, d in experiment.params.items()) or "none"
            raise SpecError(f"-p {name}: {where} experiment {experiment.name!r} declares no param {name!r}; "
                            f"declared: {declared}")
        out[name] = convert_param(name, experiment.params[name], text)
    return out


_CONVERTERS: dict[type, Callable[[str], SweepValue]] = {
    int: int,
    float: float,
    str: str,
}


def convert_param(name: str, default: SweepValue, text: str) -> SweepValue:
    kind = type(default)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise SpecError(f"-p {name}={text!r}: expected a boolean (true/false)")
    try:
        return _CONVERTERS[kind](text.strip() if kind is not str else text)
    except ValueError:
        raise SpecError(f"-p {name}={text!r}: expected {'an integer' if kind is int else 'a number'}, "
                        f"like the declared default {default!r}") from None


def format_param(value: SweepValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _env(v: "_Validator", table: dict[str, Any], key: tuple[str, ...], from_env: bool = False
         ) -> tuple[dict[str, str], dict[str, str]]:
    """(literal values, name -> workstation variable): an experiment's `NAME = { from_env = "VAR" }` takes
    VAR's value from the environment of the launch, and nothing of it is written down."""
    env: dict[str, str] = {}
    env_from: dict[str, str] = {}
    for ename, value in v.table(table.get("env", {}), key + ("env",), None).items():
        ekey = key + ("env", ename)
        if isinstance(value, dict) and from_env:
            if "from_env" not in v.table(value, ekey, {"from_env"}):
                raise v.fail(ekey, 'expected { from_env = "VAR" }: the workstation variable to read at launch')
            source = value["from_env"]
            if not isinstance(source, str) or not ENV_NAME.match(source):
                raise v.fail(ekey + ("from_env",), "expected the name of an environment variable of this "
                                                   f"workstation (letters, digits and _), got {_kind(source)}")
            env_from[ename] = source
        elif isinstance(value, (dict, list)):
            allowed = ' or { from_env = "VAR" }' if from_env else ""
            raise v.fail(ekey, f"expected a string{allowed}, got {_kind(value)}")
        else:
            env[ename] = str(value).lower() if isinstance(value, bool) else str(value)
    return env, env_from


def env_from_workstation(exp: Experiment) -> dict[str, str]:
    """The values of the experiment's `from_env` variables, read now from this process's environment; one
    line naming what is missing."""
    missing = sorted({source for source in exp.env_from.values() if source not in os.environ})
    if missing:
        said = ", ".join(f"{name} (from_env = {source!r})" for name, source in exp.env_from.items()
                         if source in missing)
        raise WorkbenchError(f"experiment {exp.name!r} takes {said} from the environment, and "
                        f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set here",
                        hint=f"export {missing[0]}=... and launch again")
    return {name: os.environ[source] for name, source in exp.env_from.items()}


def literal_secrets(exp: Experiment) -> list[str]:
    """The experiment's env names that look secret (redaction's rule) and hold a value written in the spec."""
    return [name for name in exp.env if is_secret_name(name)]


def substitute(argv: list[str], values: dict[str, Any]) -> list[str]:
    """Replaces {name} inside each item; an item stays one argument whatever the value holds. A placeholder
    with no value stays as it is: `{output}` is left for the executor, which alone knows the run's output dir
    as the program sees it, and puts it in at submit."""
    def one(item: str) -> str:
        return PLACEHOLDER.sub(lambda m: format_param(values[m.group(1)]) if m.group(1) in values else m.group(0), item)
    return [one(item) for item in argv]
