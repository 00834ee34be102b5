"""An executed notebook as rich renderables, for the terminal (`workbench runs notebook`) and the app's
Notebook tab: markdown, code with its `In [n]` prompt and highlighting, text outputs, errors with their
tracebacks, and each image as a one-line placeholder saying its size and where to open it.

Nothing in a notebook is trusted: any key may be missing or of another type, and each output is cut at
`MAX_OUTPUT_LINES`, so an odd or huge notebook still renders."""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.syntax import Syntax
from rich.text import Text

from workbench.errors import WorkbenchError
from workbench.formatting import size
from workbench.textsafe import coloured_text, log_text

MAX_OUTPUT_LINES = 200
MAX_OUTPUT_CHARS = 200 * 200  # one huge line (a printed array) is cut too
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
# ANSI colours: the terminal's own palette, readable on a dark and on a light background alike
SYNTAX_THEME = "ansi_dark"


class NotebookError(WorkbenchError):
    """The file is not a notebook this can read (not JSON, not a notebook's shape)."""


def render(notebook: str | dict[str, Any], *, path: str, plain: bool = False) -> list[RenderableType]:
    """The notebook (its JSON text, or the parsed object) as renderables, a cell after another; `path` is
    where the file is, named in image placeholders and errors. `plain`: code as plain text (for a file or a
    pipe: highlighting draws each line to the console's width, which would cut long lines there)."""
    nb = _parsed(notebook, path)
    language = _language(nb)
    out: list[RenderableType] = []
    code_number = 0
    for cell in nb.get("cells") or []:
        if not isinstance(cell, dict):
            continue
        kind = cell.get("cell_type")
        source = _plain(_text(cell.get("source")))
        if kind == "code":
            code_number += 1
            out.append(_code_cell(cell, source, language, f"{path}#cell-{code_number}", plain))
        elif kind == "markdown":
            out.append(Group(Markdown(source), Text("")) if source.strip() else Text(""))
        else:  # raw, or a kind this does not know: its text as it is
            out.append(Text(source, style="dim"))
    return out


def _parsed(notebook: str | dict[str, Any], path: str) -> dict[str, Any]:
    if isinstance(notebook, str):
        try:
            notebook = json.loads(notebook)
        except ValueError as exc:
            raise NotebookError(f"{path} is not a valid notebook (not JSON: {exc})") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells", []), list):
        raise NotebookError(f"{path} is not a valid notebook (no list of cells)")
    major = notebook.get("nbformat")
    if isinstance(major, int) and major < 4:
        return _upgraded(notebook, path)
    return notebook


def _upgraded(notebook: dict[str, Any], path: str) -> dict[str, Any]:
    """An nbformat 3 notebook (worksheets), as version 4: nbformat knows every older shape."""
    import nbformat  # only for the rare old notebook

    try:
        return nbformat.convert(nbformat.from_dict(notebook), 4)
    except Exception as exc:  # noqa: BLE001 - whatever a damaged old notebook raises, it is said as one line
        raise NotebookError(f"{path} is not a valid notebook (nbformat {notebook.get('nbformat')}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _language(nb: dict[str, Any]) -> str:
    metadata = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    for key in ("language_info", "kernelspec"):
        section = metadata.get(key)
        if isinstance(section, dict) and isinstance(section.get("name" if key == "language_info" else "language"), str):
            return section["name" if key == "language_info" else "language"]
    return "python"


def _code_cell(cell: dict[str, Any], source: str, language: str, where: str, plain: bool = False) -> RenderableType:
    count = cell.get("execution_count")
    prompt = f"In [{count if isinstance(count, int) else ' '}]:"
    parts: list[RenderableType] = [Text(prompt, style="bold blue")]
    if source.strip() and plain:
        parts.append(Text(source.rstrip("\n")))
    elif source.strip():
        parts.append(Syntax(source.rstrip("\n"), language, theme=SYNTAX_THEME, background_color="default",
                            word_wrap=True))
    for output in _merged_streams(cell.get("outputs")):
        parts.append(_output(output, count, where))
    parts.append(Text(""))
    return Group(*parts)


def _merged_streams(outputs: Any) -> list[dict[str, Any]]:
    """The outputs, consecutive stream outputs of the same name as one: a kernel sends each flush as its own
    (a progress bar: hundreds), which a terminal shows as one stream, its `\r`-redrawn lines in their last
    state (as `_cut` draws them)."""
    merged: list[dict[str, Any]] = []
    for output in outputs if isinstance(outputs, list) else []:
        if not isinstance(output, dict):
            continue
        last = merged[-1] if merged else None
        if (last is not None and output.get("output_type") == "stream" == last.get("output_type")
                and output.get("name") == last.get("name")):
            merged[-1] = {**last, "text": _text(last.get("text")) + _text(output.get("text"))}
        else:
            merged.append(output)
    return merged


def _output(output: dict[str, Any], count: Any, where: str) -> RenderableType:
    kind = output.get("output_type")
    if kind == "stream":
        stderr = output.get("name") == "stderr"
        return _cut(_text(output.get("text")), style="red dim" if stderr else "")
    if kind == "error":
        head = Text(f"{_plain(output.get('ename'))}: {_plain(output.get('evalue'))}", style="bold red")
        traceback = output.get("traceback")
        lines = "\n".join(str(line) for line in traceback) if isinstance(traceback, list) else ""
        return Group(head, _cut(lines)) if lines.strip() else head
    if kind in ("execute_result", "display_data", "update_display_data"):
        data = output.get("data") if isinstance(output.get("data"), dict) else {}
        parts: list[RenderableType] = []
        if kind == "execute_result" and isinstance(count, int):
            parts.append(Text(f"Out[{count}]:", style="bold red"))
        parts += [Text(image_placeholder(mime, data[mime], where), style="magenta") for mime in IMAGE_TYPES
                  if mime in data]
        if "text/plain" in data:
            parts.append(_cut(_text(data["text/plain"])))
        elif not parts and data:
            parts.append(Text(f"[{', '.join(sorted(map(str, data)))} output: not shown in a terminal]", style="dim"))
        return Group(*parts)
    return Text(f"[{_plain(kind)} output]", style="dim")


def image_placeholder(mime: str, payload: Any, where: str) -> str:
    """One line for an image: `[image/png 640x480, 22.5 KiB — open train.ipynb#cell-7]`."""
    text = _text(payload)
    if mime == "image/svg+xml":
        nbytes, dimensions = len(text.encode()), None
    else:
        encoded = "".join(text.split())
        nbytes = max(0, len(encoded) * 3 // 4 - encoded[-2:].count("="))
        dimensions = _png_dimensions(encoded) if mime == "image/png" else None
    shape = f" {dimensions[0]}x{dimensions[1]}" if dimensions else ""
    return f"[{mime}{shape}, {size(nbytes)} — open {_plain(where)}]"


def _png_dimensions(encoded: str) -> tuple[int, int] | None:
    """Width and height from the PNG header (signature, then the IHDR chunk): the first 24 bytes."""
    try:
        head = base64.b64decode(encoded[:32])
    except (binascii.Error, ValueError):
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _cut(text: str, style: str = "") -> Text:
    """Output text with its colours (SGR) kept and any other control sequence dropped, at most
    MAX_OUTPUT_LINES lines, then a note of how many more there were."""
    lines = text.rstrip("\n").split("\n")
    more_lines = len(lines) - MAX_OUTPUT_LINES
    kept = "\n".join(lines[:MAX_OUTPUT_LINES])
    more_chars = len(kept) - MAX_OUTPUT_CHARS
    shown = Text.from_ansi(_coloured(kept[:MAX_OUTPUT_CHARS]), style=style)
    if more_lines > 0:
        shown.append(f"\n… {more_lines} more line{'s' if more_lines > 1 else ''}", style="dim italic")
    elif more_chars > 0:
        shown.append(f"\n… {more_chars} more characters", style="dim italic")
    return shown


def _coloured(text: str) -> str:
    """Each line as a terminal would leave it, its colours kept (`textsafe.coloured_text`)."""
    return "\n".join(coloured_text(line) for line in text.split("\n"))


def _text(value: Any) -> str:
    """A notebook's multiline string: a string, or a list of strings to join (nbformat allows both)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(part for part in value if isinstance(part, str))
    return ""


def _plain(value: Any) -> str:
    """Text from the notebook drawn as it is: every escape sequence and control character out."""
    return "\n".join(log_text(line) for line in str(value if value is not None else "").split("\n"))
