"""What the history says about images: the image ids runs recorded (the images `gc` may remove and `doctor`
counts are among those Workbench built or a run of this data dir used)."""

from __future__ import annotations


class ImageQueries:
    def recorded_image_ids(self) -> set[str]:
        """Every image id a run of this data dir recorded."""
        return {r[0] for r in self.query("SELECT DISTINCT image_id FROM runs WHERE image_id IS NOT NULL")}  # type: ignore[attr-defined]

    def run_images(self) -> list[tuple[str, str, str, str]]:
        """(run id, project, experiment, image id) of every run that recorded an image, oldest first."""
        rows = self.query(  # type: ignore[attr-defined]
            "SELECT id, project, experiment, image_id FROM runs WHERE image_id IS NOT NULL ORDER BY seq")
        return [(r[0], r[1], r[2], r[3]) for r in rows]
