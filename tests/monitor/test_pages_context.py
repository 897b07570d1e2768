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


def test_context_follows_the_pages_base_href() -> None:
    """An image resolved against ``<base href>`` keeps its place in the text: its window is
    the poem beside it, not the top of the page, and the credit under it is found."""
    from parsel import Selector

    from monitor.pages import page_in_context

    page = (
        '<html><head><base href="https://cdn.example.org/a/"></head><body>'
        "<p>Masthead of the blog</p><p>" + "filler words " * 200 + "</p>"
        '<p>The poem line beside the picture</p><img src="pic.jpg"><p>Photo by Jane Roe.</p>'
        '<a href="next.html">next poem</a></body></html>'
    )
    for found in (
        images_in_context(page, "https://blog.example/post/1", around=100),
        page_in_context(Selector(text=page).root, "https://blog.example/post/1", around=100)[1],
    ):
        [image] = found
        assert image.image.url == "https://cdn.example.org/a/pic.jpg"
        assert image.text is not None
        assert "The poem line beside the picture" in image.text
        assert "Masthead" not in image.text
        assert image.credit == "Photo by Jane Roe"


def test_a_link_to_an_image_places_it_in_the_text() -> None:
    """An image that only a link shows (``<a href="full.jpg">``) gets the text around the link."""
    page = (
        "<html><body><p>Top of the page</p><p>" + "filler words " * 200 + "</p>"
        '<p>See the full picture</p><a href="/media/full.jpg">full size</a></body></html>'
    )
    [image] = images_in_context(page, "https://blog.example/post/1", around=60)
    assert image.image.url == "https://blog.example/media/full.jpg"
    assert image.text is not None and "See the full picture" in image.text
