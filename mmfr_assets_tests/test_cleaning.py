"""Image cleaning and text normalization rules, one fault at a time."""

from __future__ import annotations

import io

import polars as pl
import pytest
from PIL import Image

from mmfr_assets.cleaning.assets import CleanedConfig, clean_batch
from mmfr_assets.cleaning.images import ImageRejected, clean_image
from mmfr_assets.cleaning.text import normalize_text


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_clean_rgb_image_is_kept_as_is_without_reencoding():
    data = _encode(Image.new("RGB", (640, 480), (10, 20, 30)), "PNG")
    result = clean_image(data)
    assert result.data is None and result.fixes == ()
    assert (result.width, result.height, result.format) == (640, 480, "PNG")


@pytest.mark.parametrize(
    "data, reason",
    [
        (None, "image_missing"),
        (b"", "image_missing"),
        (b"definitely not an image", "image_corrupt"),
        (_encode(Image.new("RGB", (300, 300), "red"), "JPEG")[:400], "image_corrupt"),
        (_encode(Image.new("RGB", (300, 300), "red"), "PNG")[:-40], "image_corrupt"),
    ],
)
def test_unusable_images_are_rejected_with_their_reason(data, reason):
    with pytest.raises(ImageRejected) as rejected:
        clean_image(data)
    assert rejected.value.reason == reason


def test_decompression_bomb_is_rejected_before_decoding():
    bomb = _encode(Image.new("1", (12000, 12000)), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(ImageRejected) as rejected:
        clean_image(bomb)
    assert rejected.value.reason == "image_decompression_bomb"
    assert "144000000" in rejected.value.detail
    # A lower bound from config applies too.
    with pytest.raises(ImageRejected):
        clean_image(_encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=5000)


@pytest.mark.parametrize(
    "size, fmt, expected",
    [((4000, 3000), "JPEG", (2048, 1536)), ((1500, 4000), "PNG", (768, 2048))],
)
def test_long_edge_is_resized_keeping_aspect_ratio(size, fmt, expected):
    result = clean_image(_encode(Image.new("RGB", size, (200, 100, 50)), fmt))
    assert "resized" in result.fixes
    image = _open(result.data)
    assert image.size == expected and (result.width, result.height) == expected
    assert image.format == fmt and image.mode == "RGB"


def test_reduced_scale_decoding_keeps_the_picture():
    source = Image.new("RGB", (4000, 3000), "white")
    source.paste((255, 0, 0), (0, 0, 2000, 3000))  # left half red
    result = clean_image(_encode(source, "JPEG", quality=95))
    image = _open(result.data)
    left, right = image.getpixel((200, 700)), image.getpixel((1800, 700))
    assert left[0] > 200 and left[1] < 60 and min(right) > 200


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "L", "CMYK", "I;16"])
def test_every_mode_becomes_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    image = Image.new(mode, (64, 48))
    result = clean_image(_encode(image, fmt))
    assert _open(result.data).mode == "RGB"
    assert f"converted_{mode}_to_rgb" in result.fixes


def test_transparency_is_flattened_onto_white():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    result = clean_image(_encode(image, "PNG"))
    assert _open(result.data).getpixel((5, 5)) == (255, 255, 255)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (400, 200), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    result = clean_image(_encode(image, "JPEG", exif=exif.tobytes()))
    assert "exif_transposed" in result.fixes
    cleaned = _open(result.data)
    assert cleaned.size == (200, 400)
    assert cleaned.getexif().get(0x0112, 1) == 1


def test_text_normalization_is_conservative():
    frame = pl.DataFrame(
        {"q": ["\ufeffWhat is x²?\r\nA. 1  \r\n\r\n\r\n\r\nB. 2\u200b", "  ", None, "e\u0301"]}
    )
    out = frame.select(normalize_text("q"))["q"].to_list()
    assert out == ["What is x²?\nA. 1\n\nB. 2", "", None, "é"]


def test_clean_batch_accounts_for_every_row():
    good = _encode(Image.new("RGB", (50, 50)), "PNG")
    batch = pl.DataFrame(
        {
            "subset": ["S"] * 5,
            "id": ["1", "2", "3", "4", "5"],
            "question": ["q", "q", " \u200b ", "q", "q"],
            "answer": ["a", "a", "a", "", "a"],
            "image_bytes": [good, None, good, good, b"junk"],
            "image_path": [None] * 5,
        }
    )
    verdicts = clean_batch(batch, CleanedConfig())
    assert verdicts.kept["id"].to_list() == ["1"]
    reasons = dict(zip(verdicts.dropped["id"], verdicts.dropped["reason"]))
    assert reasons == {
        "2": "image_missing",
        "3": "text_empty_question",
        "4": "text_empty_answer",
        "5": "image_corrupt",
    }
    assert set(verdicts.dropped["filter"]) == {"image", "text"}
    # Text-only rows may be kept on request.
    lenient = clean_batch(batch, CleanedConfig(require_image=False))
    assert sorted(lenient.kept["id"].to_list()) == ["1", "2"]
