"""A project's notebook read before a launch (projects/notebook.py): its code cells, whether a cell is tagged
`parameters`, and the names that cell sets, IPython's magic and shell lines left out."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from workbench.errors import SpecError
from workbench.projects.notebook import outline


def _write(tmp_path, params_source: str | None, *code: str):
    cells = [new_markdown_cell("# x")]
    if params_source is not None:
        cells.append(new_code_cell(params_source, metadata={"tags": ["parameters"]}))
    cells += [new_code_cell(c) for c in code]
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    return path



@pytest.mark.parametrize("source, declared", [
    ("lr = 0.1\nepochs: int = 3\na, (b, c) = 1, (2, 3)", {"lr", "epochs", "a", "b", "c"}),
    ("%env CUDA_VISIBLE_DEVICES=0\nlr = 0.1\n!nvidia-smi", {"lr"}),     # magics and shell lines left out
    ("lr = 0.1\nfor x in range(3): y = x", {"lr"}),                        # top level only
    ("lr = 0.1\nprint lr", None),                                          # not Python 3: nothing said
])
def test_declared_params(tmp_path, source, declared):
    found = outline(_write(tmp_path, source, "print(1)"))
    assert found.has_parameters_cell and found.code_cells == 2
    assert found.declared == (None if declared is None else frozenset(declared))


def test_no_parameters_cell(tmp_path):
    found = outline(_write(tmp_path, None, "lr = 1"))
    assert (found.has_parameters_cell, found.declared, found.code_cells) == (False, frozenset(), 1)


@pytest.mark.parametrize("text, said", [
    ("{not json", "nb.ipynb is not a valid notebook"),
    ('{"cells": 3, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "nb.ipynb is not a valid notebook"),
    ("\udcff", "cannot read the notebook"),
])
def test_a_broken_notebook_is_one_line(tmp_path, text, said):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(SpecError) as caught:
        outline(path, shown_as="nb.ipynb")
    assert said in caught.value.message and "\n" not in caught.value.message
