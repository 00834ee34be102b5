"""A project's notebook as Workbench reads it before a run: valid nbformat, and the names its `parameters`
cell assigns (papermill's convention), so a launch can say which params the notebook does not declare."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import SpecError

PARAMETERS_TAG = "parameters"


@dataclass(frozen=True)
class NotebookOutline:
    code_cells: int
    has_parameters_cell: bool
    declared: frozenset[str] | None  # names the parameters cell assigns; None: it is not plain Python


def outline(path: Path, shown_as: str | None = None) -> NotebookOutline:
    """Reads and checks the notebook; SpecError (one line) when it is not JSON or not a valid notebook."""
    import nbformat
    from nbformat.validator import ValidationError

    name = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{name}: cannot read the notebook ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except ValidationError as exc:
        raise SpecError(f"{name} is not a valid notebook: {str(exc.message).splitlines()[0][:200]}",
                        hint="open and save it in Jupyter to repair it") from None
    except Exception as exc:  # noqa: BLE001 - nbformat raises plain JSON and reader errors
        raise SpecError(f"{name} is not a valid notebook: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
                        hint="a notebook is JSON in the nbformat schema; open and save it in Jupyter") from None
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    marked = next((cell for cell in code if PARAMETERS_TAG in (cell.metadata.get("tags") or [])), None)
    assigned = _assigned(marked.source) if marked else set()
    return NotebookOutline(len(code), marked is not None, None if assigned is None else frozenset(assigned))


def _assigned(source: str) -> set[str] | None:
    """Names a cell assigns at its top level (`lr = 0.1`, `lr: float = 0.1`, `a, b = 1, 2`); IPython's magic and
    shell lines (`%env X=1`, `!pip ...`) left out. None when the rest is not Python either: nothing can be said."""
    plain = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(plain)
    except SyntaxError:
        return None
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name):
                    names.add(leaf.id)
    return names
