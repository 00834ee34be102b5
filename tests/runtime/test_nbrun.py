"""workbench_nbrun, the notebook runner a notebook run executes (`python3 -m workbench_nbrun NB`), driven as a
subprocess with the system python, real nbclient and a real ipykernel kernel."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import require

nbformat = pytest.importorskip("nbformat")
v4 = nbformat.v4
RUNTIME = Path(__file__).resolve().parents[2] / "workbench" / "runtime"


@pytest.fixture(autouse=True)
def _kernel_installed():
    missing = [name for name in ("nbclient", "ipykernel") if importlib.util.find_spec(name) is None]
    require(not missing, f"the notebook runner's parts are missing: {', '.join(missing)}")


def write_notebook(folder: Path, cells, name="train.ipynb", minor=5, **metadata) -> Path:
    nb = v4.new_notebook(metadata=metadata, nbformat_minor=minor)
    nb.cells = cells
    if minor < 5:  # cell ids came with nbformat 4.5
        for cell in cells:
            cell.pop("id")
    path = folder / name
    nbformat.write(nb, path)
    return path


def runner_env(tmp_path: Path, params=None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(RUNTIME), "WORKBENCH_OUTPUT": str(tmp_path / "out")}
    env.pop("WORKBENCH_NOTEBOOK_PARAMS", None)
    if params is not None:
        env["WORKBENCH_NOTEBOOK_PARAMS"] = params if isinstance(params, str) else json.dumps(params)
    return env


def run_notebook(path: Path, params=None, python=sys.executable, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "workbench_nbrun", path.name], cwd=path.parent, capture_output=True,
                          text=True, env=runner_env(path.parent, params), timeout=timeout)


def executed(path: Path):
    return nbformat.read(path.parent / "out" / path.name, as_version=4)


def code(source, *tags):
    return v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})


def test_params_go_after_the_parameters_cell_with_their_types(tmp_path):
    long_line = "print(type(lr).__name__, lr, type(epochs).__name__, epochs, repr(name), fast, limit)"
    nb = write_notebook(tmp_path, [
        v4.new_markdown_cell("# Training"),
        code("lr = 0.1\nepochs = 1\nname = 'x'\nfast = False\nlimit = 1.0", "parameters"),
        code(long_line),
        code(""),
        code("import os\nprint(os.getcwd())"),
    ])
    done = run_notebook(nb, {"lr": 1.0, "epochs": 3, "name": "it's", "fast": True, "limit": float("inf")})

    assert done.returncode == 0, done.stderr
    assert "float 1.0 int 3 \"it's\" True inf\n" in done.stdout
    assert done.stdout.splitlines()[0] == "[workbench] cell 1/5: lr = 0.1"
    markers = [line for line in done.stdout.splitlines() if line.startswith("[workbench] cell")]
    assert markers == ["[workbench] cell 1/5: lr = 0.1", "[workbench] cell 2/5: # Parameters",
                       "[workbench] cell 3/5: " + long_line[:80],
                       "[workbench] cell 5/5: import os"]  # an empty cell is counted, not run
    assert f"\n{tmp_path}\n" in done.stdout  # the kernel runs in the notebook's folder
    assert "parameters" not in done.stderr and "[workbench]" not in done.stderr
    saved = executed(nb)
    injected = saved.cells[2]
    assert len(long_line) > 80
    assert injected.metadata.tags == ["injected-parameters"]
    assert injected.source == ('# Parameters\nlr = 1.0\nepochs = 3\nname = "it\'s"\nfast = True\n'
                               'limit = float("inf")\n')
    assert saved.cells[3].outputs[0].text.startswith("float 1.0 int 3")


def test_no_parameters_cell_puts_params_first_and_says_so_once(tmp_path):
    nb = write_notebook(tmp_path, [code("print(seed * 2)")])
    done = run_notebook(nb, {"seed": 21})

    assert done.returncode == 0, done.stderr
    assert done.stderr.count('[workbench] the notebook has no cell tagged "parameters": params go in a first cell') == 1
    assert done.stdout.splitlines() == ["[workbench] cell 1/2: # Parameters", "[workbench] cell 2/2: print(seed * 2)",
                                        "42"]
    assert executed(nb).cells[0].source == "# Parameters\nseed = 21\n"


def test_a_papermill_notebook_gets_its_old_injected_cell_replaced(tmp_path):
    nb = write_notebook(tmp_path, [
        code("alpha = 0.5", "parameters"),
        code("# Parameters\nalpha = 0.9\n", "injected-parameters"),
        code("print('alpha', alpha, 'beta' in dir())"),
    ], minor=4)  # papermill's own output is often nbformat 4.4
    done = run_notebook(nb, {"alpha": 0.25, "beta": 2})

    assert done.returncode == 0, done.stderr
    assert "alpha 0.25 True\n" in done.stdout
    cells = executed(nb).cells
    assert [c.source for c in cells if "injected-parameters" in c.metadata.get("tags", [])] == [
        "# Parameters\nalpha = 0.25\nbeta = 2\n"]
    assert len(cells) == 3
    nbformat.validate(executed(nb))
    assert '[workbench] not set in the "parameters" cell, injected anyway: beta' in done.stderr


def test_without_params_nothing_is_injected(tmp_path):
    nb = write_notebook(tmp_path, [code("x = 1", "parameters"), code("print(x)")])
    done = run_notebook(nb)

    assert done.returncode == 0, done.stderr
    assert len(executed(nb).cells) == 2 and "[workbench]" not in done.stderr


def test_outputs_stream_live_while_a_long_cell_runs(tmp_path):
    nb = write_notebook(tmp_path, [code("import time\nfor i in range(4):\n"
                                        "    print('at', time.time(), flush=True)\n    time.sleep(1)")])
    proc = subprocess.Popen([sys.executable, "-m", "workbench_nbrun", nb.name], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=runner_env(tmp_path))
    arrivals = []
    for line in proc.stdout:
        if line.startswith("at "):
            arrivals.append((float(line.split()[1]), time.time()))
    assert proc.wait(timeout=60) == 0, proc.stderr.read()

    assert len(arrivals) == 4
    assert all(seen - printed < 1.0 for printed, seen in arrivals), arrivals
    assert arrivals[-1][1] - arrivals[0][1] > 2.5  # they came as printed, not together at the cell's end


def test_rich_outputs_read_as_one_line_each(tmp_path):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    nb = write_notebook(tmp_path, [code(
        "from IPython.display import display, Image\nimport base64\n"
        f"display(Image(data=base64.b64decode('{png}')))\n{{'a': 1}}")])
    done = run_notebook(nb)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == ["[image/png, 70 bytes]", "{'a': 1}"]


def test_a_failing_cell_fails_the_run_with_its_number_line_and_error(tmp_path):
    nb = write_notebook(tmp_path, [code("print('ran')"), code("   \n\n  data = load()  # the loader\nmore()"),
                                   code("print('never')")])
    done = run_notebook(nb)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == ("[workbench] notebook failed at cell 2/3 (data = load()  # the loader): "
                                            "NameError: name 'load' is not defined")
    assert "Traceback" in done.stderr and "\x1b[" not in done.stderr  # the traceback, without colour codes
    assert "never" not in done.stdout
    cells = executed(nb).cells
    assert cells[0].outputs[0].text == "ran\n" and cells[1].outputs[0].ename == "NameError"


def test_a_dead_kernel_fails_the_run_as_such(tmp_path):
    nb = write_notebook(tmp_path, [code("print('ran')"), code("import os\nos._exit(3)"), code("print('never')")])
    done = run_notebook(nb)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "[workbench] notebook failed at cell 2/3 (import os): the kernel died (exit code 3)"
    assert executed(nb).cells[0].outputs[0].text == "ran\n"


def test_sigterm_mid_cell_stops_the_kernel_and_keeps_what_ran(tmp_path):
    nb = write_notebook(tmp_path, [code("print('first')"), code(
        "import os, time\nprint('kernel', os.getpid(), flush=True)\nfor i in range(60000):\n"
        "    print('tick', i, flush=True)\n    time.sleep(0.001)"), code("print('never')")])  # busy output: the
    # signal lands while nbclient's reader task runs as often as not, where asyncio would swallow most exceptions
    proc = subprocess.Popen([sys.executable, "-m", "workbench_nbrun", nb.name], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=runner_env(tmp_path))
    kernel_pid = None
    for line in proc.stdout:
        if line.startswith("kernel "):
            kernel_pid = int(line.split()[1])
        if line == "tick 300\n":
            break
    proc.send_signal(signal.SIGTERM)
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain, so the runner never blocks on it

    assert proc.wait(timeout=30) == 143
    assert proc.stderr.read().splitlines()[-1] == "[workbench] notebook cancelled (SIGTERM)"
    with pytest.raises(ProcessLookupError):
        os.kill(kernel_pid, 0)
    cells = executed(nb).cells
    assert cells[0].outputs[0].text == "first\n"
    assert "tick 300\n" in "".join(out.text for out in cells[1].outputs)
    assert cells[2].outputs == []


def test_an_invalid_notebook_is_refused_before_anything_runs(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    not_a_notebook = tmp_path / "list.ipynb"
    not_a_notebook.write_text('{"nbformat": 4, "nbformat_minor": 5, "cells": "nope", "metadata": {}}')

    for path in (broken, not_a_notebook):
        done = run_notebook(path)
        assert done.returncode == 2
        assert done.stderr.startswith(f"[workbench] notebook failed: {path.name} is not a valid notebook (")
        assert len(done.stderr.splitlines()) == 1 and done.stdout == ""
        assert not (tmp_path / "out" / path.name).exists()


def test_bad_params_json_is_refused(tmp_path):
    nb = write_notebook(tmp_path, [code("x = 1")])
    done = run_notebook(nb, "[1, 2]")

    assert done.returncode == 2
    assert done.stderr == "[workbench] notebook failed: WORKBENCH_NOTEBOOK_PARAMS is not a JSON object\n"


def test_a_python_without_the_runner_says_what_to_install(tmp_path):
    venv = tmp_path / "bare"  # a real interpreter with nothing installed, as in an image without nbclient
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    nb = write_notebook(tmp_path, [code("x = 1")])
    done = run_notebook(nb, python=str(python))

    assert done.returncode == 2
    assert done.stderr == (f"[workbench] notebook failed: {python} lacks the notebook runner (nbclient, ipykernel): "
                           "pip install nbclient ipykernel\n")


def test_an_unknown_kernelspec_runs_with_python3_and_says_so(tmp_path):
    nb = write_notebook(tmp_path, [code("print(1 + 1)")],
                        kernelspec={"name": "my-laptop-env", "display_name": "mine", "language": "python"})
    done = run_notebook(nb)

    assert done.returncode == 0, done.stderr
    assert '[workbench] the notebook\'s kernel "my-laptop-env" is not installed here: running it with python3' in done.stderr
    assert done.stdout.splitlines()[-1] == "2"


def test_a_kernel_whose_python_is_gone_fails_in_one_line(tmp_path):
    spec = tmp_path / "kernels" / "share" / "jupyter" / "kernels" / "old-env"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(tmp_path / "gone" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "old env", "language": "python"}))
    nb = write_notebook(tmp_path, [code("print('never')")],
                        kernelspec={"name": "old-env", "display_name": "old env", "language": "python"})
    env = {**runner_env(tmp_path), "JUPYTER_PATH": str(spec.parents[1])}
    done = subprocess.run([sys.executable, "-m", "workbench_nbrun", nb.name], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=60)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        "[workbench] notebook failed: the kernel did not start (FileNotFoundError: "), done.stderr
    assert "Traceback" not in done.stderr and "never" not in done.stdout


def test_an_unwritable_output_folder_runs_every_cell_then_fails_saying_why(tmp_path):
    (tmp_path / "blocked").write_text("a file where the output folder should be")
    nb = write_notebook(tmp_path, [code("print('one')"), code("print('two')")])
    env = {**runner_env(tmp_path), "WORKBENCH_OUTPUT": str(tmp_path / "blocked" / "out")}
    done = subprocess.run([sys.executable, "-m", "workbench_nbrun", nb.name], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=60)

    assert done.returncode == 1
    assert "one\n" in done.stdout and "two\n" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "cannot save the executed notebook" in line]
    assert len(warnings) == 1, done.stderr  # said once, not after every cell
    assert done.stderr.splitlines()[-1].startswith(
        f"[workbench] notebook failed: the executed notebook could not be saved to {tmp_path / 'blocked' / 'out'}")
    assert "Traceback" not in done.stderr


def test_each_flush_does_not_become_an_output_of_its_own(tmp_path):
    nb = write_notebook(tmp_path, [code("import sys, time\nfor i in range(20):\n"
                                        "    print('step', i, flush=True)\n    time.sleep(0.02)\n"
                                        "print('oops', file=sys.stderr)")])
    done = run_notebook(nb)

    assert done.returncode == 0, done.stderr
    outputs = executed(nb).cells[0].outputs
    assert [out.name for out in outputs] == ["stdout", "stderr"]
    assert outputs[0].text == "".join(f"step {i}\n" for i in range(20))


def test_merge_streams_joins_only_neighbours_of_the_same_name():
    spec = importlib.util.spec_from_file_location("workbench_nbrun", RUNTIME / "workbench_nbrun.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    cell = {"outputs": [{"output_type": "stream", "name": "stdout", "text": "a"},
                        {"output_type": "stream", "name": "stdout", "text": "b\n"},
                        {"output_type": "stream", "name": "stderr", "text": "c"},
                        {"output_type": "display_data", "data": {}},
                        {"output_type": "stream", "name": "stderr", "text": "d"},
                        {"output_type": "stream", "name": "stderr", "text": "e"}]}
    runner.merge_streams(cell)
    assert [(out["output_type"], out.get("text")) for out in cell["outputs"]] == [
        ("stream", "ab\n"), ("stream", "c"), ("display_data", None), ("stream", "de")]


def test_tqdm_auto_draws_its_text_bar_even_with_ipywidgets_installed(tmp_path):
    missing = [name for name in ("tqdm", "ipywidgets") if importlib.util.find_spec(name) is None]
    require(not missing, f"pip install {' '.join(missing)}: the test needs them")
    nb = write_notebook(tmp_path, [code("from tqdm.auto import tqdm, trange\nimport time\n"
                                        "for _ in tqdm(range(30), desc='train', mininterval=0):\n"
                                        "    time.sleep(0.01)\nprint(type(trange(1)).__module__)")])
    done = run_notebook(nb)

    assert done.returncode == 0, done.stderr
    assert "train: 100%|" in done.stderr and "30/30" in done.stderr
    assert done.stdout.splitlines()[-1] == "tqdm.std"
    outputs = executed(nb).cells[0].outputs
    assert all(out.output_type == "stream" for out in outputs), outputs  # no widget
    assert [out.name for out in outputs].count("stderr") == 1
