from __future__ import annotations

import numpy as np
import pytest

from vec2face.data import decode_image, encode_image
from vec2face.data.images import image_size, sniff_image_format
from vec2face.errors import DataFormatError


def test_png_round_trip_is_exact(synth) -> None:
    img = synth.make_image(2, 5)
    data = encode_image(img, "png")
    assert sniff_image_format(data) == "png"
    np.testing.assert_array_equal(decode_image(data), img)


def test_jpeg_round_trip_is_close_and_sized(synth) -> None:
    img = synth.make_image(1, 1, size=24)
    data = encode_image(img, "jpeg", quality=95)
    assert sniff_image_format(data) == "jpeg"
    out = decode_image(data)
    assert out.dtype == np.uint8 and out.shape == (24, 24, 3)
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 12
    assert image_size(data) == (24, 24)


def test_grey_png_decodes_to_rgb() -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    out = decode_image(encode_image(grey, "png"))
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[..., 0], grey)


@pytest.mark.parametrize("bad", [b"", b"not an image at all", "truncated"])
def test_corrupt_bytes_name_their_source(bad: bytes | str, synth) -> None:
    if bad == "truncated":
        bad = encode_image(synth.make_image(0, 0, size=32), "jpeg")[:200]
    with pytest.raises(DataFormatError, match="some/file.jpg"):
        decode_image(bad, "some/file.jpg")


def test_encode_rejects_non_uint8(synth) -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="unknown image format"):
        encode_image(synth.make_image(0, 0), "gif")
