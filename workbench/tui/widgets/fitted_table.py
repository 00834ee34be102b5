"""A DataTable whose columns use the width it has (issue 9: at 80 columns nothing essential is cut; a
wider terminal widens names, params and metrics rather than leaving the space unused)."""

from __future__ import annotations

from typing import Any, Sequence

from textual.geometry import Size
from textual.widgets import DataTable

from workbench.formatting import share_width


class FittedTable(DataTable):
    """A table whose columns `(key, least width, weight)` use the width it has: each gets its least width and
    the weighted ones share the rest, again on every resize and when the vertical scrollbar comes or goes.
    Widths are set, never measured from cells, so an update never reflows the table."""

    def __init__(self, layout: Sequence[tuple[str, int, int]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.column_layout = tuple(layout)
        for key, least, _ in self.column_layout:
            self.add_column(key, width=least, key=key)

    def on_resize(self) -> None:
        self.fit_columns()

    def watch_show_vertical_scrollbar(self) -> None:
        self.fit_columns()

    def layout_for(self, available: int) -> Sequence[tuple[str, int, int]]:
        """The layout at this width (override to let columns go where even their least widths do not fit)."""
        return self.column_layout

    def fit_columns(self) -> None:
        available = self.scrollable_content_region.width - 2 * self.cell_padding * len(self.column_layout)
        if available <= 0:
            return  # not laid out yet
        widths = share_width(available, self.layout_for(available))
        if all(self.columns[key].width == width for key, width in widths.items()):
            return
        for key, width in widths.items():
            self.columns[key].width = width
        # DataTable has no public "column widths changed": its render caches do not key on width
        self._clear_caches()
        self.virtual_size = Size(sum(c.get_render_width(self) for c in self.columns.values()),
                                 self.virtual_size.height)
        self.refresh()
