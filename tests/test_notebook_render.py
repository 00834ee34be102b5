"""Issue 24: an executed notebook as terminal renderables (workbench/notebook_render.py): markdown, code
with its prompt, outputs, images as one-line placeholders, errors with their tracebacks; long outputs cut;
odd content drawn without a crash; an unreadable file said in one line. One notebook is executed for real
by nbclient and ipykernel, so the renderer reads what Jupyter really writes."""

from __future__ import annotations

import base64
import json

import pytest
from rich.console import Console
from rich.text import Text

from notebook_fixture import PNG, executed_notebook
from workbench.notebook_render import NotebookError, image_placeholder, render


def printed(renderables, width: int = 100, colour: bool = False) -> str:
    console = Console(width=width, record=True, force_terminal=colour, color_system="truecolor" if colour else None)
    with console.capture() as capture:
        for renderable in renderables:
            console.print(renderable)
    return capture.get()


def test_each_kind_of_cell_and_output_is_drawn():
    text = printed(render(json.dumps(executed_notebook()), path="runs/r1/out/train.ipynb"))
    lines = text.splitlines()
    assert "Training MNIST" in text and "A small model; lr is a parameter." in text  # markdown, rendered
    assert "# Training" not in text
    assert [line for line in lines if line.startswith("In [")] == [f"In [{n}]:" for n in range(1, 7)]
    assert "    print(f\"epoch {epoch} loss {1 / (epoch + 1):.2f}\")" in lines
    assert lines.index("epoch 1 loss 0.50") < lines.index("warning: slow disk") < lines.index("Out[3]:")
    assert lines[lines.index("Out[3]:") + 1] == "0.6"
    assert "[image/png 64x48, 162 B — open runs/r1/out/train.ipynb#cell-4]" in lines
    assert "<Figure size 640x480 with 1 Axes>" in lines
    assert "row 199" in lines and "row 200" not in text and "… 50 more lines" in lines
    assert "ValueError: lr too high" in lines
    assert "----> 1 raise ValueError(\"lr too high\")" in lines  # the traceback, its escapes read as colours
    assert "\x1b" not in text


def test_colours_stderr_and_the_traceback_keep_their_meaning():
    renderables = render(executed_notebook(), path="nb.ipynb")
    coloured = printed(renderables, colour=True)
    assert "\x1b[" in coloured  # highlighted code, styled prompts
    console = Console(width=100)
    stderr = [seg for seg in console.render(renderables[3]) if seg.text == "warning: slow disk"][-1]  # the output's
    assert stderr.style.color.name == "red" and stderr.style.dim
    traceback = [seg for seg in console.render(renderables[6]) if seg.text == "ValueError"]
    assert traceback and any(seg.style and seg.style.color for seg in traceback)  # from the ANSI codes


def test_image_placeholders_give_type_size_dimensions_and_where():
    png = base64.b64encode(PNG).decode()
    assert image_placeholder("image/png", png, "a.ipynb#cell-2") == "[image/png 64x48, 162 B — open a.ipynb#cell-2]"
    jpeg = base64.b64encode(b"\xff\xd8\xff" + bytes(30_000)).decode()
    assert image_placeholder("image/jpeg", [jpeg[:100] + "\n", jpeg[100:]], "a.ipynb#cell-3") == \
        "[image/jpeg, 29.3 KiB — open a.ipynb#cell-3]"
    assert image_placeholder("image/svg+xml", "<svg/>", "x#cell-1") == "[image/svg+xml, 6 B — open x#cell-1]"
    assert image_placeholder("image/png", "not base64 at all!", "x#cell-1").startswith("[image/png, ")


def test_odd_content_is_drawn_without_a_crash():
    nb = {"nbformat": 4, "metadata": {"language_info": {"name": "r"}}, "cells": [
        "not a cell", {}, {"cell_type": "code"}, {"cell_type": "raw", "source": ["raw ", "text"]},
        {"cell_type": "code", "execution_count": None, "source": None, "outputs": [
            7, {}, {"output_type": "stream"}, {"output_type": "error"},
            {"output_type": "execute_result", "data": "oops"}, {"output_type": "display_data", "data": {"text/html": "<b>"}},
            {"output_type": "weird"}, {"output_type": "stream", "text": "\x1b[2Jcleared?\x07\n"}]},
        {"cell_type": "markdown", "source": "\x1b]0;title\x07**bold**"},
    ]}
    text = printed(render(nb, path="odd.ipynb"))
    assert "In [ ]:" in text and "raw text" in text and "[text/html output: not shown in a terminal]" in text
    assert "[weird output]" in text and "cleared?" in text and "bold" in text
    assert "\x1b" not in text and "\x07" not in text
    assert render({"cells": []}, path="empty.ipynb") == []


def test_one_huge_line_is_cut_too():
    nb = executed_notebook()
    nb["cells"][5]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * 1_000_000}]
    text = printed(render(nb, path="big.ipynb"))
    assert "… 960000 more characters" in text
    assert len(text) < 100_000


@pytest.mark.parametrize("content, detail", [("{\"cells\": [", "not JSON"), ("[1, 2]", "no list of cells"),
                                             ("{\"cells\": 3}", "no list of cells")])
def test_an_unreadable_file_is_one_line(content, detail):
    with pytest.raises(NotebookError) as caught:
        render(content, path="/data/runs/r1/out/train.ipynb")
    message = str(caught.value)
    assert message.startswith("/data/runs/r1/out/train.ipynb is not a valid notebook (") and detail in message
    assert "\n" not in message


def test_an_nbformat_3_notebook_is_read():
    import nbformat.v3 as v3

    old = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[
        v3.new_text_cell("markdown", source="# Old"),
        v3.new_code_cell(input="1 + 1", prompt_number=2, outputs=[v3.new_output("pyout", output_text="2", prompt_number=2)]),
    ])])
    text = printed(render(json.dumps(old), path="old.ipynb"))
    assert "Old" in text and "In [2]:" in text and "1 + 1" in text and "Out[2]:" in text


def test_what_nbclient_and_ipykernel_write_is_rendered(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    png = base64.b64encode(PNG).decode()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Real run"),
        nbformat.v4.new_code_cell("import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\n6 * 7"),
        nbformat.v4.new_code_cell("from IPython.display import Image, display\nimport base64\n"
                                  f"display(Image(data=base64.b64decode('{png}'), format='png'))"),
        nbformat.v4.new_code_cell("1 / 0"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    path = tmp_path / "real.ipynb"
    nbformat.write(nb, path)
    text = printed(render(path.read_text(), path=str(path)), width=300)
    lines = [line.rstrip() for line in text.splitlines()]
    assert "Real run" in text and "to stdout" in lines and "to stderr" in lines
    assert "Out[1]:" in lines and "42" in lines
    assert f"[image/png 64x48, 162 B — open {path}#cell-2]" in lines
    assert "ZeroDivisionError: division by zero" in lines
    assert any("1 / 0" in line and "---->" in line for line in lines)  # the traceback, as text
    assert "\x1b" not in text


def test_a_progress_bar_sent_flush_by_flush_is_one_line_in_its_last_state():
    bar = [{"output_type": "stream", "name": "stderr", "text": f"\rtrain: {i:3d}%|{'#' * (i // 10):10}|"}
           for i in range(0, 101, 5)]
    outputs = [{"output_type": "stream", "name": "stdout", "text": "epoch 1\n"}, *bar,
               {"output_type": "stream", "name": "stderr", "text": "\n"},
               {"output_type": "stream", "name": "stdout", "text": "done\n"}]
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "code", "source": "train()", "execution_count": 1, "metadata": {},
                     "outputs": outputs}]}
    lines = printed(render(nb, path="nb.ipynb")).splitlines()

    assert lines[2:5] == ["epoch 1", "train: 100%|##########|", "done"]
    assert not any("95%" in line for line in lines)
