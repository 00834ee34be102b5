"""workbench_nbrun: executes a notebook as a Workbench run (`python3 -m workbench_nbrun train.ipynb`).

Shipped in workbench/runtime/, which every run has on its PYTHONPATH; it runs inside the run (a container, a
remote host), so it is stdlib Python >= 3.8 plus nbformat/nbclient and a kernel, imported only when it runs.
Inputs come from the environment: WORKBENCH_NOTEBOOK_PARAMS (a JSON object of param values, injected
papermill-style after the cell tagged "parameters"), WORKBENCH_OUTPUT (where the executed notebook is saved
after every cell). Its stdout/stderr lines starting with "[workbench]" are a contract Workbench parses:
a marker before each code cell, and one closing line when the notebook fails."""

import ast
import base64
import json
import logging
import os
import re
import signal
import sys
import tempfile

PREFIX = "[workbench]"
PARAMS_ENV = "WORKBENCH_NOTEBOOK_PARAMS"
OUTPUT_ENV = "WORKBENCH_OUTPUT"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
DEFAULT_KERNEL = "python3"
EXIT_FAILED = 1
EXIT_UNUSABLE = 2  # the notebook, its params or the runner itself cannot be used: nothing ran
MARKER_WIDTH = 80
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# Run silently in the kernel before the first cell: with ipywidgets installed, tqdm.auto would draw a widget,
# which a log shows nothing of; tqdm.std writes its bar to stderr like a terminal's.
TQDM_SETUP = """\
try:
    import sys as _wb_sys, tqdm as _wb_tqdm, tqdm.std as _wb_tqdm_std
    for _wb_name in ("tqdm.auto", "tqdm.autonotebook"):
        _wb_module = type(_wb_sys)(_wb_name)
        _wb_module.tqdm, _wb_module.trange = _wb_tqdm_std.tqdm, _wb_tqdm_std.trange
        _wb_module.__all__ = ["tqdm", "trange"]
        _wb_sys.modules[_wb_name] = _wb_module
        setattr(_wb_tqdm, _wb_name.split(".")[1], _wb_module)
    del _wb_sys, _wb_tqdm, _wb_tqdm_std, _wb_name, _wb_module
except Exception:
    pass
"""


class Unusable(Exception):
    """Nothing can run: its message is the whole closing line."""


class Cancelled(SystemExit):
    """A signal asked the run to stop. A SystemExit because asyncio lets only those (and KeyboardInterrupt) out
    of a task the signal lands in; any other exception would end nbclient's output reader, not the run."""

    def __init__(self, signum):
        super().__init__(128 + signum)
        self.signum = signum


# --- what the run prints -------------------------------------------------------------------------------------

class Echo:
    """Writes to the runner's stdout/stderr as the kernel sends text, and keeps Workbench's own lines at
    the start of a line even when a cell printed text without a newline."""

    def __init__(self, out=None, err=None):
        self.streams = {"stdout": out or sys.stdout, "stderr": err or sys.stderr}
        self.at_line_start = {"stdout": True, "stderr": True}

    def write(self, name, text):
        if not text:
            return
        stream = self.streams[name]
        stream.write(text)
        stream.flush()
        self.at_line_start[name] = text.endswith("\n")

    def line(self, name, text):
        self.write(name, ("" if self.at_line_start[name] else "\n") + text + "\n")

    def output(self, out):
        """One nbformat output as the log shows it."""
        kind = out.get("output_type")
        if kind == "stream":
            self.write("stderr" if out.get("name") == "stderr" else "stdout", out.get("text", ""))
        elif kind == "error":
            self.line("stderr", _ANSI.sub("", "\n".join(out.get("traceback") or [])).rstrip("\n"))
        elif kind in ("execute_result", "display_data"):
            shown = display_text(out.get("data") or {})
            if shown:
                self.line("stdout", shown)


def display_text(data):
    """A rich output in one place of the log: an image as a placeholder with its size, else its text/plain,
    else a placeholder for its first kind."""
    for mime, value in data.items():
        if mime.startswith("image/"):
            return "[%s, %s bytes]" % (mime, format(_payload_size(mime, value), ","))
    if "text/plain" in data:
        return _joined(data["text/plain"]).rstrip("\n")
    for mime, value in data.items():
        return "[%s, %s bytes]" % (mime, format(len(_joined(value).encode("utf-8")), ","))
    return ""


def _payload_size(mime, value):
    text = _joined(value)
    if mime == "image/svg+xml":
        return len(text.encode("utf-8"))
    try:
        return len(base64.b64decode(text))
    except ValueError:
        return len(text)


def _joined(value):
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return value if isinstance(value, str) else json.dumps(value)


def first_line(source):
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:MARKER_WIDTH]
    return ""


def cell_marker(number, total, source):
    return "%s cell %d/%d: %s" % (PREFIX, number, total, first_line(source))


def failure_line(number, total, source, what):
    return "%s notebook failed at cell %d/%d (%s): %s" % (PREFIX, number, total, first_line(source), what)


# --- params --------------------------------------------------------------------------------------------------

def read_params(environ):
    raw = environ.get(PARAMS_ENV, "").strip()
    if not raw:
        return {}
    try:
        params = json.loads(raw)
    except ValueError as err:
        raise Unusable("%s notebook failed: %s is not valid JSON (%s)" % (PREFIX, PARAMS_ENV, err))
    if not isinstance(params, dict):
        raise Unusable("%s notebook failed: %s is not a JSON object" % (PREFIX, PARAMS_ENV))
    for name in params:
        if not name.isidentifier():
            raise Unusable("%s notebook failed: param %r is not a Python name" % (PREFIX, name))
    return params


def python_literal(value):
    """Python source for a param value, so that the notebook sees its declared type (a float stays float)."""
    if isinstance(value, float):
        if value != value:
            return 'float("nan")'
        if value in (float("inf"), float("-inf")):
            return 'float("%s")' % ("inf" if value > 0 else "-inf")
        return repr(value)
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join("%r: %s" % (str(k), python_literal(v)) for k, v in value.items()) + "}"
    raise TypeError("no Python literal for %r" % (value,))


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def inject_params(nb, params, new_code_cell):
    """Papermill's convention: drop earlier injected cells, put a new one right after the first cell tagged
    "parameters" (first in the notebook when there is none). Returns the notes to print: a missing parameters
    cell, and params it does not set (injected all the same)."""
    if not params:
        return []
    nb.cells = [cell for cell in nb.cells if INJECTED_TAG not in _tags(cell)]
    source = "# Parameters\n" + "".join("%s = %s\n" % (name, python_literal(v)) for name, v in params.items())
    injected = new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    if nb.get("nbformat_minor", 0) < 5:
        injected.pop("id", None)  # cell ids came with nbformat 4.5; an older notebook must not have one
    position = next((i for i, cell in enumerate(nb.cells) if PARAMETERS_TAG in _tags(cell)), None)
    if position is None:
        nb.cells.insert(0, injected)
        return ['%s the notebook has no cell tagged "parameters": params go in a first cell' % PREFIX]
    nb.cells.insert(position + 1, injected)
    declared = assigned_names(nb.cells[position].get("source", ""))
    undeclared = [name for name in params if declared is not None and name not in declared]
    if undeclared:
        return ['%s not set in the "parameters" cell, injected anyway: %s' % (PREFIX, ", ".join(undeclared))]
    return []


def assigned_names(source):
    """Names a parameters cell assigns at top level; None when it is not plain Python (magics)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            for sub in ast.walk(target) if target is not None else ():
                if isinstance(sub, ast.Name):
                    names.add(sub.id)
    return names


# --- the notebook file ---------------------------------------------------------------------------------------

def read_notebook(nbformat, path):
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError) as err:
        detail = " ".join(str(err).split())[:200] or type(err).__name__
        raise Unusable("%s notebook failed: %s is not a valid notebook (%s)" % (PREFIX, path, detail))
    return nb


class Saver:
    """Saves the executed copy after every cell; a failed save (a full disk, an unwritable folder) is said
    once and does not stop the notebook, but the run fails at the end if the copy could not be written."""

    def __init__(self, nbformat, nb, path, echo):
        self.nbformat, self.nb, self.path, self.echo = nbformat, nb, path, echo
        self.error = None

    def __call__(self):
        if not self.path:
            return
        try:
            save_notebook(self.nbformat, self.nb, self.path)
        except (OSError, ValueError) as err:
            if self.error is None:
                self.echo.line("stderr", "%s cannot save the executed notebook to %s (%s): going on"
                               % (PREFIX, self.path, _one_line(err)))
            self.error = err
        else:
            self.error = None

    def failure(self):
        """The closing line when the last save failed, else None."""
        if self.error is None:
            return None
        return "%s notebook failed: the executed notebook could not be saved to %s (%s)" % (
            PREFIX, self.path, _one_line(self.error))


def _one_line(err):
    return " ".join(str(err).split())[:200] or type(err).__name__


def merge_streams(cell):
    """Consecutive stream outputs of the same name as one (each kernel flush arrives as its own: a progress
    bar would be hundreds of them), for an nbclient without coalesce_streams, or a cell that failed."""
    merged = []
    for out in cell.get("outputs", []):
        last = merged[-1] if merged else None
        if (last is not None and out.get("output_type") == "stream" == last.get("output_type")
                and out.get("name") == last.get("name")):
            last["text"] = last.get("text", "") + out.get("text", "")
        else:
            merged.append(out)
    cell["outputs"] = merged


def save_notebook(nbformat, nb, path):
    """Atomically, so a reader (or a run cancelled mid-save) never sees half a notebook."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    try:
        with open(tmp, "w", encoding="utf-8") as out:  # open, not mkstemp: the copy gets the umask's mode
            nbformat.write(nb, out)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --- the kernel ----------------------------------------------------------------------------------------------

def choose_kernel(nb, echo):
    from jupyter_client.kernelspec import KernelSpecManager

    wanted = (nb.metadata.get("kernelspec") or {}).get("name") or DEFAULT_KERNEL
    installed = KernelSpecManager().find_kernel_specs()
    if wanted in installed:
        return wanted
    if DEFAULT_KERNEL in installed:
        echo.line("stderr", '%s the notebook\'s kernel "%s" is not installed here: running it with %s'
                  % (PREFIX, wanted, DEFAULT_KERNEL))
        return DEFAULT_KERNEL
    raise Unusable(missing_runner_line())


def missing_runner_line():
    return ("%s notebook failed: %s lacks the notebook runner (nbclient, ipykernel): pip install nbclient ipykernel"
            % (PREFIX, sys.executable))


def kernel_exit_detail(client):
    process = getattr(getattr(client.km, "provisioner", None), "process", None)
    code = process.poll() if process is not None else None
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return "killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "killed by signal %d" % -code
    return "exit code %d" % code


def live_client_class(NotebookClient, echo):
    class LiveNotebookClient(NotebookClient):
        """Echoes every output the moment nbclient records it (its iopub reader runs while the cell runs)."""

        def output(self, outs, msg, display_id, cell_index):
            out = super().output(outs, msg, display_id, cell_index)
            if out is not None:
                echo.output(out)
            return out

    return LiveNotebookClient


def execute(nb, nbformat, client, out_path, echo):
    """Runs every code cell in the client's kernel; returns the exit code."""
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    code_cells = [(index, cell) for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    total = len(code_cells)
    save = Saver(nbformat, nb, out_path, echo)
    save()
    try:
        with client.setup_kernel():
            quiet_setup(client)
            for number, (index, cell) in enumerate(code_cells, start=1):
                if not cell.source.strip():
                    continue
                echo.line("stdout", cell_marker(number, total, cell.source))
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as err:
                    evalue = (str(err.evalue).splitlines() or [""])[0]
                    echo.line("stderr", failure_line(number, total, cell.source, "%s: %s" % (err.ename, evalue)))
                    return EXIT_FAILED
                except DeadKernelError:
                    echo.line("stderr", failure_line(number, total, cell.source,
                                                     "the kernel died (%s)" % kernel_exit_detail(client)))
                    return EXIT_FAILED
                finally:
                    merge_streams(cell)
                    save()
    except RuntimeError as err:  # nbclient's word for a kernel that never answered at start
        if client.kc is not None:
            raise
        echo.line("stderr", "%s notebook failed: the kernel did not start (%s)" % (PREFIX, err))
        return EXIT_FAILED
    except Exception as err:  # a kernel that cannot start (its Python gone), nbclient's own failure
        where = "the kernel did not start" if client.kc is None else "the runner stopped"
        echo.line("stderr", "%s notebook failed: %s (%s: %s)" % (PREFIX, where, type(err).__name__, _one_line(err)))
        return EXIT_FAILED
    failure = save.failure()
    if failure:
        echo.line("stderr", failure)
        return EXIT_FAILED
    return 0


def quiet_setup(client):
    """TQDM_SETUP in the kernel, its outputs dropped; whatever goes wrong there does not stop the run."""
    from nbclient.util import run_sync

    try:
        run_sync(client.kc.execute_interactive)(TQDM_SETUP, silent=True, store_history=False, timeout=30,
                                      output_hook=lambda msg: None)
    except Exception:
        pass


def run(path, environ):
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        raise Unusable(missing_runner_line())
    echo = Echo()
    params = read_params(environ)
    nb = read_notebook(nbformat, path)
    for note in inject_params(nb, params, nbformat.v4.new_code_cell):
        echo.line("stderr", note)
    kernel = choose_kernel(nb, echo)
    out_dir = environ.get(OUTPUT_ENV)
    out_path = os.path.join(out_dir, os.path.basename(path)) if out_dir else None
    folder = os.path.dirname(os.path.abspath(path))
    options = {"coalesce_streams": True} if hasattr(NotebookClient, "coalesce_streams") else {}
    client = live_client_class(NotebookClient, echo)(
        nb, kernel_name=kernel, timeout=None, allow_errors=False, resources={"metadata": {"path": folder}},
        **options)
    # Unix sockets rather than TCP: nothing else on the machine can reach the kernel, and it says no warning.
    client.km = client.kernel_manager_class(
        kernel_name=kernel, transport="ipc", ip=os.path.join(environ["JUPYTER_RUNTIME_DIR"], "kernel"))
    client.owns_km = True  # so that leaving setup_kernel shuts it down, as for a manager nbclient made

    def cancel(signum, frame):
        client.shutdown_kernel = "immediate"  # a cancelled cell gets no interrupt, so it prints nothing more
        # The cell's abandoned asyncio tasks end with "Kernel died" once it is shut down: expected, not news.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        raise Cancelled(signum)

    signal.signal(signal.SIGTERM, cancel)
    try:
        return execute(nb, nbformat, client, out_path, echo)
    except Cancelled as stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second cancel must not cut the clean-up short
        if out_path:
            try:
                save_notebook(nbformat, nb, out_path)
            except (OSError, ValueError):
                pass  # said when the save after a cell failed; the run stops all the same
        if client.km is not None and client.km.has_kernel:
            client._cleanup_kernel()
        echo.line("stderr", "%s notebook cancelled (%s)" % (PREFIX, signal.Signals(stop.signum).name))
        return 128 + stop.signum


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python3 -m workbench_nbrun NOTEBOOK.ipynb\n")
        return EXIT_UNUSABLE
    # The kernel's connection files go to a folder of the run's own: a container's HOME may not be writable.
    with tempfile.TemporaryDirectory(prefix="workbench-jupyter-") as runtime_dir:
        os.environ.setdefault("JUPYTER_RUNTIME_DIR", runtime_dir)
        if not os.access(os.path.expanduser("~"), os.W_OK):  # else IPython warns of it in every run's log
            os.environ.setdefault("IPYTHONDIR", os.path.join(runtime_dir, "ipython"))
        try:
            return run(args[0], os.environ)
        except Unusable as err:
            sys.stderr.write(str(err) + "\n")
            sys.stderr.flush()
            return EXIT_UNUSABLE
        except Exception as err:  # whatever else: still the one closing line Workbench reads, no traceback
            sys.stderr.write("\n%s notebook failed: the runner stopped (%s: %s)\n"
                             % (PREFIX, type(err).__name__, _one_line(err)))
            sys.stderr.flush()
            return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
