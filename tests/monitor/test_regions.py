"""Picture-like rectangles on plain backgrounds (monitor.regions) and the matches they give."""

from __future__ import annotations

import dataclasses
import io
import random
from typing import cast

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from bench.attacks import a_page, a_screenshot, encode, font
from monitor import fingerprints, matching, regions
from monitor.matching import Matcher
from monitor.regions import picture_regions
from monitor.settings import MatchSettings
from tests.monitor.helpers import (
    BLUE_GIRL,
    ELARUN,
    RETINA,
    SAPIN,
    candidate_fingerprint,
    fixture_image,
    noise,
    one_faiss_thread,
    textured,
    work_fingerprint,
)


def on_page(
    picture: Image.Image, at: tuple[int, int], size: tuple[int, int], caption: bool = True
) -> Image.Image:
    page = Image.new("RGB", size, (250, 250, 248))
    d = ImageDraw.Draw(page)
    if caption:
        for i in range(4):
            d.text((20, 8 + 14 * i), "Whose woods these are I think I know.", fill=(30, 30, 30))
    page.paste(picture, at)
    return page


def test_a_picture_pasted_on_a_page_is_proposed_where_it_is() -> None:
    page = on_page(textured(300, 200), (60, 90), (500, 400))
    (box,) = picture_regions(np.asarray(page))
    assert box == pytest.approx((60, 90, 300, 200), abs=3)


def test_the_text_above_a_picture_is_not_proposed() -> None:
    page = on_page(textured(300, 200), (60, 90), (500, 400))
    boxes = picture_regions(np.asarray(page))
    assert all(y >= 85 for _, y, _, _ in boxes)


def test_a_picture_with_a_line_of_text_touching_it_is_trimmed_to_the_picture() -> None:
    page = on_page(textured(300, 200), (60, 60), (500, 400), caption=False)
    ImageDraw.Draw(page).text((60, 262), "photo: somebody else", fill=(0, 0, 0))
    (box,) = picture_regions(np.asarray(page))
    assert box == pytest.approx((60, 60, 300, 200), abs=3)


def drawing_on_white() -> np.ndarray:
    canvas = Image.new("RGB", (400, 300), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    d.ellipse((80, 40, 320, 260), fill=(40, 120, 200), outline=(0, 0, 0), width=4)
    d.polygon([(200, 10), (260, 120), (140, 120)], fill=(220, 60, 40))
    return np.asarray(canvas)


@pytest.mark.parametrize(
    "image",
    [
        lambda: drawing_on_white(),  # clip art: a drawing on the background is not a pasted picture
        lambda: np.asarray(fixture_image(SAPIN)),
        lambda: np.asarray(noise(400, 300)),  # no plain background at all
        lambda: np.asarray(textured(400, 300)),  # a picture filling the frame
        lambda: np.asarray(on_page(textured(20, 20), (100, 100), (500, 400))),  # a speck
        lambda: np.full((300, 400, 3), 255, np.uint8),  # blank
        lambda: np.zeros((10, 10, 3), np.uint8),  # tiny
    ],
)
def test_nothing_is_proposed_without_a_picture_on_a_plain_background(image) -> None:  # type: ignore[no-untyped-def]
    assert picture_regions(image()) == []


def test_proposals_are_in_the_candidates_pixels_when_it_was_reduced() -> None:
    page = on_page(textured(900, 600), (150, 300), (1400, 1100))
    cand = candidate_fingerprint(page, fmt="PNG", work_side=512)
    (region,) = cand.regions
    assert region.box == pytest.approx((150, 300, 900, 600), abs=8)


def registered(work: Image.Image) -> Matcher:
    """A matcher holding ``work`` as ``w0`` and three unrelated works beside it."""
    others = [fixture_image(RETINA), fixture_image(BLUE_GIRL), textured(400, 300, 9)]
    fps = {f"w{i}": work_fingerprint(img) for i, img in enumerate([work, *others])}
    matcher = Matcher(MatchSettings(), lambda ids: {i: fps[i] for i in ids})
    for key, fp in fps.items():
        matcher.add(key, fp)
    return matcher


@pytest.fixture
def smooth_matcher(monkeypatch: pytest.MonkeyPatch) -> tuple[Matcher, Image.Image]:
    work = fixture_image(ELARUN)  # a gradient wallpaper: soft curves, hardly a corner
    # and none of its faint corners either (local features find it by those, on a page too):
    # so it stands for the smoothest works, which have no corner of any contrast
    monkeypatch.setattr(fingerprints, "_FAINT_FAST_THRESHOLD", fingerprints._FAST_THRESHOLD)
    return registered(work), work


@pytest.mark.parametrize("attack", [a_page, a_screenshot])
def test_a_smooth_work_on_a_page_is_found_by_its_rectangle(
    smooth_matcher: tuple[Matcher, Image.Image], attack
) -> None:  # type: ignore[no-untyped-def]
    matcher, work = smooth_matcher
    page, params = attack(work, random.Random(3))
    cand = candidate_fingerprint(page)
    with one_faiss_thread():
        found = matcher.match(cand)
        without = matcher.match(dataclasses.replace(cand, regions=()))
    assert [m.work_id for m in found] == ["w0"]
    match = found[0]
    assert match.details["method"] in ("region_pdq", "region_phash")
    assert match.details["region_box"] == pytest.approx(list(match.region), abs=2)
    assert (
        0 <= match.details["region_hash_distance"] <= (80 if match.details["method"] == "region_pdq" else 16)
    )
    assert "embedded" in match.flags
    if attack is a_page:
        x, y = params["at"]
        w, h = round(work.width * params["scale"]), round(work.height * params["scale"])
        assert match.region == pytest.approx((x, y, w, h), abs=4)
    # local features alone do not find this work: the rectangle is what does
    assert "w0" not in [m.work_id for m in without]


def waved(img: Image.Image, amplitude: float) -> Image.Image:
    """``img`` with its curves moved in waves of ``amplitude`` of its size: drawn again alike."""
    pixels = np.asarray(img)
    h, w = pixels.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = x + amplitude * w * np.sin(3 * np.pi * y / h)
    map_y = y + amplitude * h * np.sin(2 * np.pi * x / w)
    return Image.fromarray(cv2.remap(pixels, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))


def test_a_rectangle_of_another_smooth_picture_is_not_a_match(
    smooth_matcher: tuple[Matcher, Image.Image],
) -> None:
    """The same colours and curves, drawn again (waved by 5 % of the size), blurred hard and
    turned upside down: the shading agrees block by block, the fine detail does not. The work
    itself turned and blurred so is a copy, found by its rectangle's hashes and detail."""
    matcher, work = smooth_matcher

    def on_a_page(picture: Image.Image) -> Image.Image:
        upside_down = picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM).filter(ImageFilter.GaussianBlur(6))
        return a_page(upside_down, random.Random(3))[0]

    with one_faiss_thread():
        assert matcher.match(candidate_fingerprint(on_a_page(waved(work, 0.05)))) == []
        (copy,) = matcher.match(candidate_fingerprint(on_a_page(work)))
    assert copy.work_id == "w0" and copy.details["method"] in ("region_pdq", "region_phash")
    assert copy.details["detail_ncc"] >= MatchSettings().low_quality_min_detail


def test_a_glow_on_a_dark_background_is_not_a_pasted_picture() -> None:
    yy, xx = np.mgrid[0:300, 0:400]
    glow = 230 * np.exp(-((xx - 200) ** 2 + (yy - 150) ** 2) / (2 * 45.0**2))
    sky = np.repeat(np.clip(glow, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    assert picture_regions(sky) == []


def test_a_small_picture_in_a_page_is_checked_on_its_own_thumbnail(
    smooth_matcher: tuple[Matcher, Image.Image],
) -> None:
    """At 15 % of a page's width the work is a few dozen pixels of the page's thumbnail; the
    rectangle's own thumbnail keeps it at its size for the pixel check."""
    matcher, work = smooth_matcher
    small = work.resize((150, round(work.height * 150 / work.width)), Image.Resampling.LANCZOS)
    page = on_page(small, (420, 90), (1000, 600))
    cand = candidate_fingerprint(page)
    (region,) = cand.regions
    assert region.box == pytest.approx((420, 90, small.width, small.height), abs=3)
    assert region.thumb.shape == (small.height, small.width)
    with one_faiss_thread():
        found = matcher.match(cand)
        no_thumb = dataclasses.replace(region, thumb=np.zeros((0, 0), np.uint8))
        on_page_thumb = matcher.match(dataclasses.replace(cand, regions=(no_thumb,)))
    assert [m.work_id for m in found] == ["w0"]
    assert found[0].details["method"] in ("region_pdq", "region_phash")
    assert found[0].region == pytest.approx((420, 90, small.width, small.height), abs=4)
    # the page's 256-pixel thumbnail shows it 38 pixels wide: a much weaker check (0.81 here)
    assert found[0].similarity >= 0.95
    assert all(m.similarity < found[0].similarity - 0.1 for m in on_page_thumb)


def test_a_picture_whose_pale_sky_meets_the_page_is_still_a_rectangle() -> None:
    picture = np.asarray(textured(300, 200)).copy()
    picture[:40, :120] = (250, 250, 248)  # the page's colour along 40 % of its top edge
    page = on_page(Image.fromarray(picture), (200, 120), (900, 500))
    (box,) = picture_regions(np.asarray(page))
    assert box == pytest.approx((200, 120, 300, 200), abs=3)  # (a glow still is not: test below)


def pale(width: int, height: int, *, text: bool = False) -> Image.Image:
    """A light picture a few levels under a white page: a snowfield, or with ``text`` a
    light-grey dialog. Nearly every pixel is within ``BACKGROUND_TOLERANCE`` of the page's
    colour, and nearly none equals it."""
    t = np.asarray(textured(width, height)).astype(np.float64)
    img = Image.fromarray(np.clip(244 + 0.05 * (t - 128), 0, 255).astype(np.uint8))
    if text:
        d = ImageDraw.Draw(img)
        for i in range(4):
            d.text((16, 14 + 26 * i), "Route: car (fastest)", fill=(60, 60, 60), font=font(14))
    return img


def within_tolerance(picture: Image.Image, page_colour: tuple[int, int, int]) -> float:
    deviation = np.abs(np.asarray(picture).astype(np.int16) - page_colour).max(axis=2)
    return float((deviation <= regions.BACKGROUND_TOLERANCE).mean())


@pytest.mark.parametrize("quality", [95, 85])
def test_a_pale_picture_on_a_pale_page_is_proposed_where_it_is(
    quality: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picture = pale(300, 200)
    assert within_tolerance(picture, (250, 250, 248)) > 0.99
    page = on_page(picture, (60, 90), (500, 400))
    pixels = np.asarray(Image.open(io.BytesIO(encode(page, "JPEG", quality))).convert("RGB"))
    (box,) = picture_regions(pixels)
    assert box == pytest.approx((60, 90, 300, 200), abs=2)
    # it is the second look, at the page's own noise, that finds it
    monkeypatch.setattr(regions, "QUIET_TOLERANCE", regions.BACKGROUND_TOLERANCE)
    assert picture_regions(pixels) == []


def test_a_pale_picture_keeps_the_box_the_first_look_gives_a_contrasted_one() -> None:
    page = on_page(textured(300, 200), (60, 90), (900, 500))
    page.paste(pale(200, 150), (500, 200))
    boxes = picture_regions(np.asarray(page))
    assert boxes == [pytest.approx((60, 90, 300, 200), abs=3), pytest.approx((500, 200, 200, 150), abs=3)]


def test_a_pale_work_on_a_poem_page_is_found_by_its_rectangle() -> None:
    """The JPEG's ringing joins the poem's last line to the picture at the second look's
    tolerance; the rows between them are still gaps, and the box is cut there."""
    work = pale(320, 240, text=True)
    assert within_tolerance(work, (252, 252, 250)) > 0.85
    matcher = registered(work)
    page, params = a_page(work, random.Random(3))
    cand = candidate_fingerprint(page, quality=90)
    x, y = cast(list[int], params["at"])
    scale = cast(float, params["scale"])
    w, h = round(work.width * scale), round(work.height * scale)
    (region,) = cand.regions
    assert region.box == pytest.approx((x, y, w, h), abs=1)
    with one_faiss_thread():  # by its rectangle alone: the local features are left out
        found = matcher.match(dataclasses.replace(cand, features=fingerprints.LocalFeatures.empty()))
    assert [m.work_id for m in found] == ["w0"]
    assert found[0].details["method"] in ("region_pdq", "region_phash")
    assert found[0].region == pytest.approx((x, y, w, h), abs=2)


def test_a_line_of_text_just_above_a_picture_is_cut_off_its_rectangle() -> None:
    """On the reduced copy the caption's last line and the picture are one blob; on the full
    pixels a few rows of background lie between them, and the box is cut there."""
    page = Image.new("RGB", (1000, 500), (252, 252, 250))
    d = ImageDraw.Draw(page)
    line = "Whose woods these are I think I know. " * 2
    for i in range(4):  # lines wider than the picture, the last one ending 6 pixels above it
        d.text((30, 20 + 24 * i), line, fill=(40, 40, 40), font=font(18))
    page.paste(textured(240, 180), (100, 116))
    (box,) = picture_regions(np.asarray(page))
    assert box == pytest.approx((100, 116, 240, 180), abs=2)


def test_a_rectangle_found_inside_a_pale_rim_is_grown_to_the_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    """The picture's outer rim is a level or two off the page: its rectangle is proposed a few
    pixels inside it, the work mapped onto that smaller box fails the pixel check, and the
    rectangle grown side by side passes it, placed where the picture is."""
    pixels = np.asarray(textured(300, 200)).copy()
    pixels[:6] = pixels[-6:] = 254
    pixels[:, :6] = pixels[:, -6:] = 254
    work = Image.fromarray(pixels)
    matcher = registered(work)
    page = on_page(work.resize((240, 160), Image.Resampling.LANCZOS), (400, 120), (900, 500))
    # by its rectangle alone: the local features are left out
    cand = dataclasses.replace(candidate_fingerprint(page), features=fingerprints.LocalFeatures.empty())
    (region,) = cand.regions
    x, y, w, h = region.box
    assert x > 402 and y > 122 and w < 236 and h < 156  # inside the rim
    with one_faiss_thread():
        found = matcher.match(cand)
        monkeypatch.setattr(matching, "REGION_GROW_MARGIN", 0.0)
        not_grown = matcher.match(cand)
    assert [m.work_id for m in found] == ["w0"]
    assert found[0].details["region_box"] == list(region.box)
    grown = found[0].details["region_box_grown"]  # left, top, right, bottom, in pixels
    assert any(grown) and all(0 <= side <= 0.04 * 240 for side in grown)
    assert found[0].region == pytest.approx((400, 120, 240, 160), abs=2)
    assert not_grown == []
