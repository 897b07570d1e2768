"""``images_in_context`` and ``find_credit`` (monitor/pages.py): the text and credit line around
each image of a page, stored on the candidate."""

from __future__ import annotations

from monitor.pages import find_credit, images_in_context

BLOG = """<!doctype html><html><head><title>Night walk</title>
<meta property="og:image" content="/media/og.jpg"><meta name="twitter:image" content="/media/tw.jpg">
</head><body><nav>Home About Contact</nav>
<article><h1>Night walk</h1>
<p>The night was long and the road was cold,</p>
<figure><img src="/media/walk.jpg" alt="a man"><figcaption>The stranger</figcaption></figure>
<p>he wore the dark like a borrowed coat.</p>
<p class="image-credit">Illustration: J. Painter</p>
<p>{filler}</p>
<a href="/media/walk-large.JPG">full size</a>
<p>Photo by Someone Else. More words.</p>
</article></body></html>"""


def test_each_image_gets_the_text_around_it_and_a_credit() -> None:
    html = BLOG.format(filler="lorem ipsum " * 300)
    found = {c.image.url: c for c in images_in_context(html, "https://blog.example/poem", around=200)}
    walk = found["https://blog.example/media/walk.jpg"]
    assert walk.image.alt == "a man" and walk.image.caption == "The stranger"
    assert walk.text is not None
    assert "The night was long" in walk.text and "borrowed coat" in walk.text
    assert len(walk.text) <= 2 * 200
    assert walk.credit == "Illustration: J. Painter"
    # A linked full-size image far below: its own neighbourhood, its own credit line.
    large = found["https://blog.example/media/walk-large.JPG"]
    assert large.image.kind == "link"
    assert large.text is not None and "The night was long" not in large.text
    assert large.credit == "Photo by Someone Else"
    # Meta images (og:image, twitter:image) get the start of the page.
    assert found["https://blog.example/media/tw.jpg"].image.kind == "twitter:image"
    assert "Night walk" in (found["https://blog.example/media/og.jpg"].text or "")


def test_no_credit_when_there_is_none() -> None:
    html = "<html><body><p>Just a picture.</p><img src='a.png'></body></html>"
    (only,) = images_in_context(html, "https://x.example/")
    assert only.credit is None and only.text == "Just a picture."
    assert images_in_context(html, "https://x.example/", around=0)[0].text is None


def test_find_credit_lines() -> None:
    assert find_credit("Image: Studio Xavier. Next sentence") == "Image: Studio Xavier"
    assert find_credit("Credit: Ann | Blog") == "Credit: Ann"
    assert find_credit("© 2024 Jane Doe") == "© 2024 Jane Doe"
    assert find_credit("Photograph by A. B.") == "Photograph by A. B."
    assert find_credit("courtesy of the museum") == "courtesy of the museum"
    assert find_credit("a plain sentence") is None
    assert find_credit(None) is None
