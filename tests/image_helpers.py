"""Checks that a saved plot shows something: a PNG of a useful size with data drawn in color."""
import numpy as np


def assert_png_drawn(path, min_width=300, min_height=200, min_colored=200, left=1.0):
    """``path`` is a PNG at least ``min_width`` x ``min_height`` pixels with at least
    ``min_colored`` pixels in color in its ``left`` fraction (0.75 leaves out a colorbar, which
    is drawn whether or not any point is). Axes, ticks and labels are black or gray; the data
    (colored points, lines of the default color cycle) is what puts color in a plot, so a figure
    whose data failed to draw fails here however many axes it has."""
    from PIL import Image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = Image.open(path)
    width, height = image.size
    assert width >= min_width and height >= min_height, f"{path} is only {width}x{height}"
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)[:, :int(width * left)]
    colored = int(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).sum())
    assert colored >= min_colored, f"{path} has {colored} colored pixels: nothing drawn?"
    return colored
