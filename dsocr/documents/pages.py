"""One rendered page and its geometry: pixels of the page image ↔ PDF user space."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from dsocr.documents.errors import PageError

#: PDF units are points, 72 to the inch.
POINTS_PER_INCH = 72


@dataclass
class PageImage:
    """One page, rendered, or the reason it could not be.

    The image is an RGB PIL image showing exactly ``box_pt``, turned by ``rotation``; ``to_points`` maps pixel
    boxes back to PDF user space. The geometry fields are None for image inputs and for failed pages.
    """

    index: int  # 0-based page number in the document
    image: Image.Image | None = None
    dpi: float | None = None  # what was used: the requested dpi unless the max-side cap lowered it
    size_pt: tuple[float, float] | None = None  # (width, height) as displayed, i.e. after the rotation
    rotation: int = 0  # the page's /Rotate, clockwise degrees, already applied to the image
    box_pt: tuple[float, float, float, float] | None = None  # CropBox ∩ MediaBox in PDF user space, unrotated
    error: PageError | None = None
    render_seconds: float | None = None  # producing the image: PDF render or image decode; None if it failed

    @property
    def size_px(self) -> tuple[int, int] | None:
        return self.image.size if self.image is not None else None

    def to_points(self, box_px: tuple[float, float, float, float]) -> tuple[float, float, float, float] | None:
        """``(x1, y1, x2, y2)`` in pixels of ``image`` → ``(x0, y0, x1, y1)`` in PDF user space, to 0.01 pt.

        Pixels have their origin at the top left and y running down; PDF points have y running up. None for
        pages without PDF geometry: image inputs and failed pages.
        """
        if self.dpi is None or self.size_pt is None or self.box_pt is None:
            return None
        scale = self.dpi / POINTS_PER_INCH
        width, height = self.size_pt
        left, bottom = self.box_pt[:2]
        xs, ys = [], []
        for x_px, y_px in (box_px[:2], box_px[2:]):
            x, y = x_px / scale, height - y_px / scale  # displayed points, y up
            # The image shows the page turned clockwise, so a 90° page has its bottom-left corner at the top left.
            x, y = {0: (x, y), 90: (height - y, x), 180: (width - x, height - y), 270: (y, width - x)}[self.rotation]
            xs.append(left + x)
            ys.append(bottom + y)
        return tuple(round(value, 2) for value in (min(xs), min(ys), max(xs), max(ys)))
