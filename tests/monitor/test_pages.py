"""Images, title and text extracted from saved HTML (no network)."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.pages import PageImage, extract_images, page_text, page_title, parse_srcset

BASE = "https://blog.example/posts/2024/poem.html"

BLOG_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>  The Raven &amp; Me
     | A Blog </title>
  <meta property="og:image" content="https://blog.example/media/raven-og.jpg">
  <meta property="og:image:alt" content="A raven on a branch">
  <meta name="twitter:image" content="/media/raven-card.png">
  <style>body { background: url(/media/bg.jpg) }</style>
  <script>document.write('<img src="/media/from-script.jpg">')</script>
</head>
<body>
  <h1>Once upon a midnight dreary</h1>
  <p>While I pondered,   weak and weary,<br>over many a quaint volume.</p>
  <figure>
    <img src="../../media/raven.jpg" alt="  The   raven  " width="800">
    <figcaption>Illustration by <a href="/about">Ana</a>, 2024</figcaption>
  </figure>
  <p><a href="/media/raven-full.JPEG">Full size</a> · <a href="/contact">Contact</a></p>
  <img src="https://blog.example/media/raven-og.jpg" alt="Raven, inline">
</body>
</html>
"""


def urls(images: list[PageImage]) -> list[str]:
    return [image.url for image in images]


def test_blog_page_lists_every_image_in_document_order() -> None:
    images = extract_images(BLOG_PAGE, BASE)

    assert images == [
        PageImage("https://blog.example/media/raven-og.jpg", "og:image", "A raven on a branch", None),
        PageImage("https://blog.example/media/raven-card.png", "twitter:image", None, None),
        PageImage("https://blog.example/media/raven.jpg", "img", "The raven", "Illustration by Ana, 2024"),
        PageImage("https://blog.example/media/raven-full.JPEG", "link", None, None),
    ]


def test_page_image_is_a_frozen_value() -> None:
    image = PageImage("https://a.example/x.jpg", "img", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.url = "https://b.example/y.jpg"  # type: ignore[misc]
    assert image == PageImage("https://a.example/x.jpg", "img")


# --------------------------------------------------------------------------- sources of images


def test_img_src_srcset_and_lazy_attributes() -> None:
    html = """
    <img src="a.jpg" srcset="a-1x.jpg 1x, a-2x.jpg 2x" alt="A">
    <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" data-src="lazy.jpg"
         data-srcset="lazy-640.jpg 640w, lazy-1280.jpg 1280w" alt="Lazy">
    """
    images = extract_images(html, "https://site.example/dir/page")

    assert [(i.url, i.kind, i.alt) for i in images] == [
        ("https://site.example/dir/a.jpg", "img", "A"),
        ("https://site.example/dir/a-1x.jpg", "srcset", "A"),
        ("https://site.example/dir/a-2x.jpg", "srcset", "A"),
        ("https://site.example/dir/lazy.jpg", "img", "Lazy"),
        ("https://site.example/dir/lazy-640.jpg", "srcset", "Lazy"),
        ("https://site.example/dir/lazy-1280.jpg", "srcset", "Lazy"),
    ]


def test_picture_sources_take_the_alt_of_the_picture_img() -> None:
    html = """
    <picture>
      <source type="image/avif" srcset="/p/photo.avif">
      <source type="image/webp" srcset="/p/photo-480.webp 480w, /p/photo-960.webp 960w"
              sizes="(max-width: 600px) 480px, 960px">
      <img src="/p/photo.jpg" alt="Harbour at dawn">
    </picture>
    <source srcset="/not-in-a-picture.jpg">
    """
    images = extract_images(html, "https://site.example/")

    assert [(i.url, i.kind, i.alt) for i in images] == [
        ("https://site.example/p/photo.avif", "picture", "Harbour at dawn"),
        ("https://site.example/p/photo-480.webp", "picture", "Harbour at dawn"),
        ("https://site.example/p/photo-960.webp", "picture", "Harbour at dawn"),
        ("https://site.example/p/photo.jpg", "img", "Harbour at dawn"),
    ]


@pytest.mark.parametrize(
    ("meta", "kind"),
    [
        ('<meta property="og:image" content="/i.jpg">', "og:image"),
        ('<meta property="og:image:url" content="/i.jpg">', "og:image"),
        ('<meta property="og:image:secure_url" content="/i.jpg">', "og:image"),
        ('<meta name="og:image" content="/i.jpg">', "og:image"),
        ('<meta name="twitter:image" content="/i.jpg">', "twitter:image"),
        ('<meta property="twitter:image" content="/i.jpg">', "twitter:image"),
        ('<meta name="twitter:image:src" content="/i.jpg">', "twitter:image"),
        ('<META PROPERTY="OG:IMAGE" CONTENT="/i.jpg">', "og:image"),
    ],
)
def test_meta_images(meta: str, kind: str) -> None:
    images = extract_images(f"<head>{meta}</head>", "https://site.example/a/b")

    assert images == [PageImage("https://site.example/i.jpg", kind, None, None)]  # type: ignore[arg-type]


def test_meta_tags_that_are_not_images_are_ignored() -> None:
    html = """
    <meta property="og:title" content="/not-an-image.jpg">
    <meta property="og:image:width" content="1200">
    <meta property="og:image" content="">
    <meta name="twitter:image">
    """
    assert extract_images(html, "https://site.example/") == []


def test_twitter_image_alt() -> None:
    html = '<meta name="twitter:image" content="/c.png"><meta name="twitter:image:alt" content="Card">'
    assert extract_images(html, "https://site.example/") == [
        PageImage("https://site.example/c.png", "twitter:image", "Card", None)
    ]


def test_links_count_only_when_they_point_at_image_files() -> None:
    html = """
    <a href="/a.jpg">a</a> <a href="/b.jpeg">b</a> <a href="/c.PNG">c</a> <a href="/d.gif?v=2">d</a>
    <a href="/e.webp#top">e</a> <a href="/f.avif">f</a> <a href="/g.bmp">g</a>
    <a href="/page.html">page</a> <a href="/photo.jpg/comments">comments</a> <a href="/svg.svg">svg</a>
    <a href="/?file=x.jpg">query</a> <a>no href</a> <a href="">empty</a>
    <a href="mailto:me@site.example?subject=a.jpg">mail</a>
    """
    images = extract_images(html, "https://site.example/")

    assert urls(images) == [
        "https://site.example/a.jpg",
        "https://site.example/b.jpeg",
        "https://site.example/c.PNG",
        "https://site.example/d.gif?v=2",
        "https://site.example/e.webp",
        "https://site.example/f.avif",
        "https://site.example/g.bmp",
    ]
    assert {image.kind for image in images} == {"link"}


def test_a_link_with_no_path_of_its_own_is_judged_once_resolved() -> None:
    # links are filtered by their own path before they are resolved; a query-only link takes
    # the path of the page it is on, here an image's
    html = '<a href="?size=large">large</a> <a href="?page=2">next</a> <a href="/next.html?a.jpg">x</a>'
    assert urls(extract_images(html, "https://site.example/photos/raven.jpg")) == [
        "https://site.example/photos/raven.jpg?size=large",
        "https://site.example/photos/raven.jpg?page=2",
    ]
    assert urls(extract_images(html, "https://site.example/photos/")) == []


def test_img_inside_noscript_is_found() -> None:
    html = '<img data-src="/x.jpg" src="/blank.gif"><noscript><img src="/x.jpg"></noscript>'
    assert urls(extract_images(html, "https://site.example/")) == [
        "https://site.example/blank.gif",
        "https://site.example/x.jpg",
    ]


def test_markup_inside_script_and_style_is_not_an_image() -> None:
    html = """<script>var s = '<img src="/s.jpg">';</script><style>a{}</style><template></template>
    <textarea></textarea><img src="/real.jpg">"""
    assert urls(extract_images(html, "https://site.example/")) == ["https://site.example/real.jpg"]


# --------------------------------------------------------------------------- URL resolution


def test_relative_urls_resolve_against_the_page_url() -> None:
    html = """
    <img src="same-dir.jpg"><img src="../up.jpg"><img src="/root.jpg"><img src="//cdn.example/proto.jpg">
    <img src="?q=1"><img src="https://other.example/abs.jpg"><img src="http://plain.example/insecure.jpg">
    """
    assert urls(extract_images(html, "https://site.example/a/b/page.html?x=1")) == [
        "https://site.example/a/b/same-dir.jpg",
        "https://site.example/a/up.jpg",
        "https://site.example/root.jpg",
        "https://cdn.example/proto.jpg",
        "https://site.example/a/b/page.html?q=1",
        "https://other.example/abs.jpg",
        "http://plain.example/insecure.jpg",
    ]


def test_base_href_applies_to_the_whole_document() -> None:
    html = """<html><head><meta property="og:image" content="og.jpg">
    <base href="https://static.example/assets/"><base href="https://ignored.example/"></head>
    <body><img src="img/a.jpg"><img src="/b.jpg"></body></html>"""
    assert urls(extract_images(html, "https://site.example/page")) == [
        "https://static.example/assets/og.jpg",
        "https://static.example/assets/img/a.jpg",
        "https://static.example/b.jpg",
    ]


def test_relative_base_href_resolves_against_the_page_url() -> None:
    html = '<base href="/media/"><img src="a.jpg">'
    assert urls(extract_images(html, "https://site.example/blog/post")) == [
        "https://site.example/media/a.jpg"
    ]


@pytest.mark.parametrize("href", ["javascript:void(0)", "data:text/html,x", "", "ftp://files.example/"])
def test_unusable_base_href_is_ignored(href: str) -> None:
    html = f'<base href="{href}"><img src="a.jpg">'
    assert urls(extract_images(html, "https://site.example/blog/post")) == ["https://site.example/blog/a.jpg"]


def test_unusable_urls_are_dropped() -> None:
    html = """
    <img src="data:image/png;base64,iVBORw0KGgo="><img src="DATA:image/png;base64,AAAA">
    <img src="javascript:alert(1)"><img src=" JavaScript:alert(1)"><img src=""><img src="   ">
    <img><img src><img src="ftp://files.example/a.jpg"><img src="file:///etc/passwd">
    <img src="blob:https://site.example/1234"><img src="mailto:x@y.example"><img src="http://[::1">
    <img src="http://">
    <img srcset="data:image/png;base64,AAAA 1x, /ok.jpg 2x">
    """
    assert urls(extract_images(html, "https://site.example/")) == ["https://site.example/ok.jpg"]


def test_relative_urls_are_dropped_without_a_usable_base() -> None:
    html = '<img src="rel.jpg"><img src="https://site.example/abs.jpg">'
    assert urls(extract_images(html, "")) == ["https://site.example/abs.jpg"]
    assert urls(extract_images(html, "file:///tmp/page.html")) == ["https://site.example/abs.jpg"]


def test_entities_whitespace_and_fragments_in_urls() -> None:
    html = """<img src="  /a.jpg?x=1&amp;y=2  "><img src="/with space.jpg">
    <img src="/frag.jpg#part"><img src="/frag.jpg#other"><img src="/t&#x61;b.jpg">"""
    assert urls(extract_images(html, "https://site.example/")) == [
        "https://site.example/a.jpg?x=1&y=2",
        "https://site.example/with%20space.jpg",
        "https://site.example/frag.jpg",
        "https://site.example/tab.jpg",
    ]


# --------------------------------------------------------------------------- srcset parsing


@pytest.mark.parametrize(
    ("srcset", "expected"),
    [
        ("a.jpg", ["a.jpg"]),
        ("a.jpg 1x", ["a.jpg"]),
        ("a.jpg 1x, b.jpg 2x", ["a.jpg", "b.jpg"]),
        ("a.jpg 1x,b.jpg 2x", ["a.jpg", "b.jpg"]),  # comma right after a descriptor separates
        ("a.jpg, b.jpg 2x", ["a.jpg", "b.jpg"]),  # a trailing comma ends the URL
        ("a.jpg,, b.jpg", ["a.jpg", "b.jpg"]),
        ("  \n a.jpg   640w ,\n\t b.jpg   1280w  ", ["a.jpg", "b.jpg"]),
        ("a.jpg 640w 480h, b.jpg 1.5x", ["a.jpg", "b.jpg"]),
        (
            "https://res.cloudinary.com/demo/image/upload/w_300,h_200,c_fill/cat.jpg 300w, "
            "https://res.cloudinary.com/demo/image/upload/w_600,h_400,c_fill/cat.jpg 600w",
            [
                "https://res.cloudinary.com/demo/image/upload/w_300,h_200,c_fill/cat.jpg",
                "https://res.cloudinary.com/demo/image/upload/w_600,h_400,c_fill/cat.jpg",
            ],
        ),
        ("a.jpg,b.jpg", ["a.jpg,b.jpg"]),  # no whitespace: one URL containing a comma (as browsers do)
        ("a.jpg (weird, descriptor), b.jpg", ["a.jpg", "b.jpg"]),  # commas inside parentheses
        ("", []),
        (" , ,, ", []),
        ("a.jpg 1x,", ["a.jpg"]),
    ],
)
def test_parse_srcset(srcset: str, expected: list[str]) -> None:
    assert parse_srcset(srcset) == expected


def test_srcset_candidates_are_resolved() -> None:
    html = '<img srcset="small.jpg 480w,/large.jpg 1080w, https://cdn.example/x,y.jpg 2x">'
    assert urls(extract_images(html, "https://site.example/a/")) == [
        "https://site.example/a/small.jpg",
        "https://site.example/large.jpg",
        "https://cdn.example/x,y.jpg",
    ]


# --------------------------------------------------------------------------- figures and captions


def test_figcaption_before_or_after_the_image() -> None:
    html = """
    <figure><figcaption>Before  the
      image</figcaption><img src="/1.jpg"></figure>
    <figure><img src="/2.jpg"><figcaption>After <b>the</b> image</figcaption></figure>
    <figure><img src="/3.jpg"></figure>
    <img src="/4.jpg">
    """
    images = extract_images(html, "https://site.example/")

    assert [(i.url, i.caption) for i in images] == [
        ("https://site.example/1.jpg", "Before the image"),
        ("https://site.example/2.jpg", "After the image"),
        ("https://site.example/3.jpg", None),
        ("https://site.example/4.jpg", None),
    ]


def test_nested_figures_use_the_nearest_caption() -> None:
    html = """
    <figure>
      <figure><img src="/inner.jpg"><figcaption>Inner</figcaption></figure>
      <figure><img src="/uncaptioned.jpg"></figure>
      <img src="/outer.jpg">
      <figcaption>Outer</figcaption>
    </figure>
    <img src="/outside.jpg">
    """
    images = extract_images(html, "https://site.example/")

    assert [(i.url, i.caption) for i in images] == [
        ("https://site.example/inner.jpg", "Inner"),
        ("https://site.example/uncaptioned.jpg", "Outer"),
        ("https://site.example/outer.jpg", "Outer"),
        ("https://site.example/outside.jpg", None),
    ]


def test_caption_covers_picture_srcset_and_links_in_the_figure() -> None:
    html = """<figure>
      <picture><source srcset="/a.webp"><img src="/a.jpg" srcset="/a@2x.jpg 2x" alt="A"></picture>
      <a href="/a-full.png">zoom</a>
      <figcaption>Caption <script>ignored()</script>text</figcaption>
    </figure>"""
    images = extract_images(html, "https://site.example/")

    assert {i.caption for i in images} == {"Caption text"}
    assert [i.kind for i in images] == ["picture", "img", "srcset", "link"]


def test_only_the_first_figcaption_counts() -> None:
    html = "<figure><img src=/a.jpg><figcaption>One</figcaption><figcaption>Two</figcaption></figure>"
    assert extract_images(html, "https://site.example/")[0].caption == "One"


def test_blank_alt_and_caption_are_none() -> None:
    html = '<figure><img src="/a.jpg" alt="   "><figcaption>  </figcaption></figure><img src="/b.jpg" alt>'
    images = extract_images(html, "https://site.example/")
    assert [(i.alt, i.caption) for i in images] == [(None, None), (None, None)]


# --------------------------------------------------------------------------- dedupe


def test_duplicates_keep_the_first_occurrence_and_fill_its_blanks() -> None:
    html = """
    <meta property="og:image" content="https://site.example/hero.jpg">
    <meta name="twitter:image" content="https://site.example/hero.jpg">
    <img src="/hero.jpg" srcset="/hero.jpg 1x, /hero@2x.jpg 2x" alt="Hero">
    <figure><img src="hero.jpg" alt="Other alt"><figcaption>The hero</figcaption></figure>
    <a href="/hero.jpg">download</a>
    <img src="/hero@2x.jpg">
    """
    images = extract_images(html, "https://site.example/")

    assert images == [
        PageImage("https://site.example/hero.jpg", "og:image", "Hero", "The hero"),
        PageImage("https://site.example/hero@2x.jpg", "srcset", "Hero", None),
    ]


# --------------------------------------------------------------------------- broken HTML


@pytest.mark.parametrize(
    "html",
    [
        "",
        "plain text, no markup",
        "<img",
        '<img src="/a.jpg',
        "<img src='/a.jpg' <b>",
        "</figure></picture></figcaption></a>",
        "<figure><figcaption>unclosed <img src=/a.jpg>",
        "<![if !IE]><img src=/a.jpg><![endif]>",
        "<![bogus section <img src=/a.jpg>",
        "<!-- unclosed comment <img src=/a.jpg>",
        "<!DOCTYPE",
        "<![CDATA[<img src=/a.jpg>",
        "&#99999999999; &#xD800; &bogus; <img src=/a.jpg>",
        "<script>never closed <img src=/a.jpg>",
        "<a href='/x.jpg'><a href='/y.jpg'>",
        "\x00<img src=\x00/a.jpg>",
        "<" * 1000 + "img src=/a.jpg>",
    ],
)
def test_broken_html_does_not_crash(html: str) -> None:
    images = extract_images(html, "https://site.example/")
    assert all(image.url.startswith("https://site.example/") for image in images)
    page_title(html)
    page_text(html)


def test_parsing_recovers_after_a_bogus_marked_section() -> None:
    html = "<![foo bar]><img src='/after.jpg'><title>T</title><p>text after</p>"
    assert urls(extract_images(html, "https://site.example/")) == ["https://site.example/after.jpg"]
    assert page_title(html) == "T"
    assert page_text(html) == "text after"


def test_unclosed_tags_still_yield_images() -> None:
    html = "<div><p><figure><img src=/a.jpg alt=A><figcaption>Cap<p><img src=/b.jpg>"
    images = extract_images(html, "https://site.example/")
    assert [(i.url, i.alt, i.caption) for i in images] == [
        ("https://site.example/a.jpg", "A", "Cap"),
        ("https://site.example/b.jpg", None, "Cap"),
    ]


# --------------------------------------------------------------------------- title and text


def test_page_title() -> None:
    assert page_title(BLOG_PAGE) == "The Raven & Me | A Blog"
    assert page_title("<html><body>no title</body></html>") is None
    assert page_title("<title>   </title>") is None
    assert page_title("<title>First</title><title>Second</title>") == "First"
    assert page_title("<svg><title>Icon</title></svg><title>Page</title>") == "Page"
    assert page_title("<title>Unclosed") == "Unclosed"


def test_page_text_is_visible_text_with_whitespace_collapsed() -> None:
    assert page_text(BLOG_PAGE) == (
        "Once upon a midnight dreary While I pondered, weak and weary, over many a quaint volume. "
        "Illustration by Ana, 2024 Full size · Contact"
    )


def test_page_text_leaves_out_what_is_not_shown() -> None:
    html = """<html><head><title>Title</title><style>p{color:red}</style></head><body>
    <script>var hidden = "script";</script><noscript>Enable JS</noscript>
    <template><p>template</p></template><svg><text>svg</text></svg>
    <div hidden>hidden <div>nested</div> still hidden</div>
    <p>Visible<span>Joined</span> <em>spaced</em></p><select><option>Choice</option></select>
    <p>Last</p></body></html>"""
    assert page_text(html) == "VisibleJoined spaced Last"


def test_page_text_when_head_is_not_closed() -> None:
    html = "<head><title>T</title><meta charset=utf-8><p>Body text"
    assert page_text(html) == "Body text"


def test_page_text_block_elements_separate_words() -> None:
    html = "<ul><li>one</li><li>two</li></ul><div>three</div>four<br>five<td>six</td>"
    assert page_text(html) == "one two three four five six"


def test_page_text_limit_cuts_between_words() -> None:
    html = "<p>" + "word " * 1000 + "</p>"
    text = page_text(html, limit=23)
    assert text == "word word word word"
    assert len(page_text(html)) <= 2000
    assert page_text(html, limit=0) == ""
    assert page_text("<p>" + "x" * 50 + "</p>", limit=10) == "x" * 10  # one long word is cut


def test_page_text_rejects_negative_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        page_text("<p>x</p>", limit=-1)


def test_page_text_decodes_entities() -> None:
    assert page_text("<p>caf&eacute; &lt;b&gt; &#8212; &nbsp;x</p>") == "café <b> — x"


def test_page_in_context_walks_a_parsed_tree_with_the_same_result() -> None:
    """The crawler's path (one walk over Scrapy's lxml tree) agrees with the text parsers."""
    from parsel import Selector

    from monitor.pages import images_in_context, page_in_context

    page = BLOG_PAGE.replace(
        "<h1>", '<p class="credit">Photo by Ana</p><!-- note --> after a comment <h1>'
    ).replace("</body>", '<div hidden><img src="/media/hidden.jpg"></div><p>© 2024 Ana</p></body>')
    title, found = page_in_context(Selector(text=page).root, BASE, around=40)
    assert title == page_title(page) == "The Raven & Me | A Blog"
    assert found == images_in_context(page, BASE, around=40)
    assert any(f.credit == "Photo by Ana" for f in found)
    assert any(f.text and "after a comment" in f.text for f in found)
