"""What an HTML page shows: its images, its title, its visible text.

Pure functions over saved HTML (stdlib :mod:`html.parser` only, never the network):

* :func:`extract_images` lists every image a page displays or links to, as absolute
  http(s) URLs in document order, each once: ``<img>`` ``src``/``srcset`` (and the lazy-load
  ``data-src``/``data-srcset`` variants), ``<picture><source srcset>``, ``og:image`` and
  ``twitter:image`` meta tags, and ``<a href>`` links straight to image files. An image in a
  ``<figure>`` carries the ``<figcaption>`` text.
* :func:`page_title` and :func:`page_text` give the page's title and visible text, stored
  with a match as its context (e.g. the poem around a copied illustration).
* :func:`images_in_context` adds, for each image, the visible text around it (bounded) and a
  credit line near it (an element classed ``credit``/``attribution``/``byline``, or a line
  such as "Illustration: …", "Photo by …", "© …").

Broken markup never raises: the parser recovers the way browsers do, as far as it can.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urldefrag, urljoin, urlsplit

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageInContext",
    "ImageKind",
    "PageImage",
    "extract_images",
    "find_credit",
    "images_in_context",
    "page_in_context",
    "page_text",
    "page_title",
    "parse_srcset",
]

ImageKind = Literal["img", "srcset", "picture", "og:image", "twitter:image", "link"]

#: File extensions that make an ``<a href>`` a direct link to an image.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".bmp")

# Attributes of <img> holding one URL / a srcset, in the order they are read.
_IMG_SRC_ATTRS = ("src", "data-src", "data-lazy-src", "data-original")
_IMG_SRCSET_ATTRS = ("srcset", "data-srcset", "data-lazy-srcset")
_SOURCE_SRCSET_ATTRS = ("srcset", "data-srcset", "data-lazy-srcset")
_OG_IMAGE = frozenset({"og:image", "og:image:url", "og:image:secure_url"})
_TWITTER_IMAGE = frozenset({"twitter:image", "twitter:image:src"})

# ASCII whitespace as HTML defines it (no NBSP, no vertical tab).
_HTML_SPACE = " \t\n\r\f"
# fmt: off
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
    "wbr",
})
# fmt: on
_RAW_TEXT = frozenset({"script", "style"})


@dataclass(frozen=True)
class PageImage:
    """One image found on a page.

    ``url`` is absolute (http or https, without fragment); ``alt`` is the ``<img>`` alt text
    (or ``og:image:alt``/``twitter:image:alt`` for meta images), ``None`` when absent or blank;
    ``caption`` is the text of the enclosing ``<figure>``'s ``<figcaption>``.
    """

    url: str
    kind: ImageKind
    alt: str | None = None
    caption: str | None = None


# --------------------------------------------------------------------------- parsing helpers


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    return _collapse(text) or None


def _attr_map(attrs: list[tuple[str, str | None]]) -> dict[str, str]:
    """Attributes by name; the first of duplicates wins (as in browsers); bare attributes are ``""``."""
    result: dict[str, str] = {}
    for name, value in attrs:
        result.setdefault(name, "" if value is None else value)
    return result


class _TolerantParser(HTMLParser):
    """:class:`HTMLParser` that treats a bogus ``<![...`` section as a comment instead of raising."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i + 3)
            return -1 if end < 0 else end + 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Browsers ignore the "/" of "<div/>": the element stays open. Void elements have no end anyway.
        self.handle_starttag(tag, attrs)

    def run(self, html: str) -> None:
        try:
            self.feed(html)
            self.close()
        except AssertionError:  # pragma: no cover - a malformation the override above does not catch
            pass


def parse_srcset(value: str) -> list[str]:
    """The candidate URLs of a ``srcset`` attribute, in order (descriptors dropped).

    Follows the HTML standard's algorithm: a URL runs to the next whitespace, so it may
    contain commas (``/w_100,h_100/a.jpg``); commas that end it separate candidates, as does a
    comma after the descriptors (``a.jpg 1x,b.jpg 2x``).
    """
    urls: list[str] = []
    pos, n = 0, len(value)
    while True:
        while pos < n and (value[pos] in _HTML_SPACE or value[pos] == ","):
            pos += 1
        if pos >= n:
            return urls
        start = pos
        while pos < n and value[pos] not in _HTML_SPACE:
            pos += 1
        url = value[start:pos]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            # Skip the descriptors, up to a comma outside parentheses.
            in_parens = False
            while pos < n:
                char = value[pos]
                pos += 1
                if in_parens:
                    in_parens = char != ")"
                elif char == "(":
                    in_parens = True
                elif char == ",":
                    break
        if url:
            urls.append(url)


@lru_cache(maxsize=4096)  # pure; each URL of a page is resolved twice (its image, its position)
def _absolute(raw: str, base: str) -> str | None:
    """``raw`` resolved against ``base``; ``None`` unless it is a usable http(s) URL."""
    raw = raw.strip(_HTML_SPACE)
    if not raw:
        return None
    try:
        url = urldefrag(urljoin(base, raw)).url
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced IPv6 bracket or a bad port
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return url.replace(" ", "%20")


def _links_to_image(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(IMAGE_EXTENSIONS)


def _may_link_to_image(raw: str) -> bool:
    """Whether an unresolved ``href`` can lead to an image (:func:`_links_to_image` once
    resolved). Resolving against the page changes a link's path only when it has none of its
    own (``?page=2``), so any other link is judged by its own path, without resolving it: a
    page's many links to pages cost nothing."""
    path = raw.strip(_HTML_SPACE).split("#", 1)[0].split("?", 1)[0]
    return not path or path.lower().endswith(IMAGE_EXTENSIONS)


# --------------------------------------------------------------------------- images


@dataclass(eq=False)
class _Figure:
    caption: list[str] = field(default_factory=list)
    captioned: bool = False

    def text(self) -> str | None:
        return _clean("".join(self.caption)) if self.captioned else None


@dataclass(eq=False)
class _Picture:
    alt: str | None = None


@dataclass(eq=False)
class _Found:
    raw_url: str
    kind: ImageKind
    alt: str | None
    figures: tuple[_Figure, ...] = ()  # innermost first
    picture: _Picture | None = None

    def caption(self) -> str | None:
        for figure in self.figures:
            text = figure.text()
            if text:
                return text
        return None


class _ImageParser(_TolerantParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[_Found] = []
        self.base_href: str | None = None
        self._figures: list[_Figure] = []
        self._pictures: list[_Picture] = []
        self._caption: _Figure | None = None
        self._raw_text: str | None = None
        self._last_meta: dict[str, _Found] = {}

    def _add(self, raw_url: str, kind: ImageKind, alt: str | None = None) -> _Found:
        found = _Found(
            raw_url,
            kind,
            alt,
            figures=tuple(reversed(self._figures)),
            picture=self._pictures[-1] if self._pictures else None,
        )
        self.found.append(found)
        return found

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _RAW_TEXT:
            self._raw_text = tag
            return
        attr = _attr_map(attrs)
        if tag == "img":
            self._img(attr)
        elif tag == "source" and self._pictures:
            for name in _SOURCE_SRCSET_ATTRS:
                for url in parse_srcset(attr.get(name, "")):
                    self._add(url, "picture")
        elif tag == "meta":
            self._meta(attr)
        elif tag == "a" and attr.get("href") and _may_link_to_image(attr["href"]):
            self._add(attr["href"], "link")
        elif tag == "figure":
            self._figures.append(_Figure())
        elif tag == "figcaption":
            if self._figures and not self._figures[-1].captioned:
                self._caption = self._figures[-1]
                self._caption.captioned = True
        elif tag == "picture":
            self._pictures.append(_Picture())
        elif tag == "base" and self.base_href is None and "href" in attr:
            self.base_href = attr["href"]

    def _img(self, attr: dict[str, str]) -> None:
        alt = _clean(attr.get("alt"))
        if self._pictures and self._pictures[-1].alt is None:
            self._pictures[-1].alt = alt
        for name in _IMG_SRC_ATTRS:
            if attr.get(name):
                self._add(attr[name], "img", alt)
        for name in _IMG_SRCSET_ATTRS:
            for url in parse_srcset(attr.get(name, "")):
                self._add(url, "srcset", alt)

    def _meta(self, attr: dict[str, str]) -> None:
        key = (attr.get("property") or attr.get("name") or "").strip().lower()
        content = attr.get("content", "")
        if key in _OG_IMAGE or key in _TWITTER_IMAGE:
            kind: ImageKind = "og:image" if key in _OG_IMAGE else "twitter:image"
            if content.strip():
                self._last_meta[kind] = self._add(content, kind)
        elif key in ("og:image:alt", "twitter:image:alt"):
            target = self._last_meta.get("og:image" if key.startswith("og:") else "twitter:image")
            if target is not None and target.alt is None:
                target.alt = _clean(content)

    def handle_endtag(self, tag: str) -> None:
        if tag in _RAW_TEXT:
            self._raw_text = None
        elif tag == "figcaption":
            self._caption = None
        elif tag == "figure" and self._figures:
            if self._caption is self._figures.pop():
                self._caption = None
        elif tag == "picture" and self._pictures:
            self._pictures.pop()

    def handle_data(self, data: str) -> None:
        if self._caption is not None and self._raw_text is None:
            self._caption.caption.append(data)


def extract_images(html: str, base_url: str) -> list[PageImage]:
    """Every image URL on the page, absolute, deduplicated, in document order.

    Relative URLs are resolved against the page's first ``<base href>`` (itself resolved
    against ``base_url``), else against ``base_url``. ``data:``, ``javascript:``, empty and
    other non-http(s) URLs are dropped, as are fragments. When a URL occurs more than once the
    first occurrence is kept (its kind and position); its missing ``alt``/``caption`` are
    filled from the later occurrences (an ``og:image`` repeated as a captioned ``<img>``).
    A ``<picture>``'s sources take the alt text of the picture's ``<img>``.
    """
    parser = _ImageParser()
    parser.run(html)
    return _images_found(parser, _base(parser, base_url))


def _base(parser: _ImageParser, base_url: str) -> str:
    """What the page's relative URLs resolve against: its first ``<base href>``, else ``base_url``."""
    base = base_url.strip()
    if parser.base_href is not None:
        declared = _absolute(parser.base_href, base)
        if declared is not None:
            return declared
    return base


def _images_found(parser: _ImageParser, base: str) -> list[PageImage]:
    """The parser's images, resolved against ``base`` (:func:`_base`)."""
    images: list[PageImage] = []
    position: dict[str, int] = {}
    for found in parser.found:
        url = _absolute(found.raw_url, base)
        if url is None or (found.kind == "link" and not _links_to_image(url)):
            continue
        alt = found.alt
        if alt is None and found.picture is not None:
            alt = found.picture.alt
        caption = found.caption()
        if url not in position:
            position[url] = len(images)
            images.append(PageImage(url=url, kind=found.kind, alt=alt, caption=caption))
            continue
        first = images[position[url]]
        if (first.alt is None and alt) or (first.caption is None and caption):
            images[position[url]] = PageImage(
                url=url, kind=first.kind, alt=first.alt or alt, caption=first.caption or caption
            )
    return images


# --------------------------------------------------------------------------- title and text


class _TitleParser(_TolerantParser):
    def __init__(self) -> None:
        super().__init__()
        self.title: str | None = None
        self._parts: list[str] | None = None
        self._foreign = 0  # inside <svg>/<math>, whose <title> is not the page's

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("svg", "math"):
            self._foreign += 1
        elif tag == "title" and self.title is None and self._parts is None and not self._foreign:
            self._parts = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("svg", "math") and self._foreign:
            self._foreign -= 1
        elif tag == "title" and self._parts is not None and self.title is None:
            self.title = _collapse("".join(self._parts))
            self._parts = None

    def handle_data(self, data: str) -> None:
        if self._parts is not None:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        if self._parts is not None and self.title is None:  # an unclosed <title>
            self.title = _collapse("".join(self._parts))


def page_title(html: str) -> str | None:
    """The text of the page's ``<title>``, whitespace collapsed; ``None`` when absent or blank."""
    parser = _TitleParser()
    parser.run(html)
    return parser.title or None


# Elements whose content is never shown as page text.
_INVISIBLE = frozenset(
    {"script", "style", "template", "noscript", "head", "title", "svg", "math", "iframe", "object", "select"}
)
# Elements allowed in <head>; any other start tag means the body has begun.
_HEAD_CONTENT = frozenset({"title", "meta", "link", "style", "script", "base", "noscript", "template"})
# Elements that break a line (text on either side must not run together).
# fmt: off
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "body", "br", "button", "caption", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hr", "html", "img", "input", "label", "li", "main", "nav", "ol", "option", "p", "pre",
    "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})
# fmt: on


class _TextParser(_TolerantParser):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._parts: list[str] = []
        self._length = 0
        self._space = False
        self._skip: str | None = None  # the element being skipped
        self._skip_depth = 0

    @property
    def full(self) -> bool:
        return self._length > self._limit

    def text(self) -> str:
        text = "".join(self._parts)
        if len(text) <= self._limit:
            return text
        cut = text[: self._limit]
        if not text[self._limit].isspace() and " " in cut:
            cut = cut.rsplit(" ", 1)[0]  # end on a whole word
        return cut.rstrip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip == "head" and tag not in _HEAD_CONTENT:
            self._skip = None  # "<head>...<p>": the body began without </head>
        if self._skip is not None:
            if tag == self._skip:
                self._skip_depth += 1
            return
        if tag in _BLOCK:
            self._space = True
        if tag in _VOID:
            return
        if tag in _INVISIBLE or any(name == "hidden" for name, _ in attrs):
            self._skip, self._skip_depth = tag, 1

    def handle_endtag(self, tag: str) -> None:
        if self._skip is not None:
            if tag == self._skip:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip = None
            return
        if tag in _BLOCK:
            self._space = True

    def handle_data(self, data: str) -> None:
        if self._skip is not None or self.full:
            return
        words = data.split()
        if not words:
            self._space = self._space or bool(data)
            return
        if data[0].isspace():
            self._space = True
        if self._space and self._length:
            self._parts.append(" ")
            self._length += 1
        joined = " ".join(words)  # one part per text node, not one per word
        self._parts.append(joined)
        self._length += len(joined)
        self._space = data[-1].isspace()


def page_text(html: str, limit: int = 2000) -> str:
    """The page's visible text, whitespace collapsed, at most ``limit`` characters.

    Leaves out ``<head>``, scripts, styles, templates, ``<noscript>``, SVG and elements with
    the ``hidden`` attribute; block elements separate words. A cut falls between words
    when it can.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    parser = _TextParser(limit)
    parser.run(html)
    return parser.text()


# --------------------------------------------------------------------------- images in context

_CREDIT_CLASS = re.compile(r"credit|attribution|byline|copyright", re.IGNORECASE)
_CREDIT_LINE = re.compile(
    r"(?:\b(?:photo(?:graph)?|image|illustration|artwork|art|picture|painting|drawing|pictured)"
    r"\s*(?:credit\s*)?(?:by|:)"
    r"|\bcredits?\s*:|©|\(c\)\s|\bcourtesy of\b|\bsource\s*:)"
    r"[^\n]{0,160}",
    re.IGNORECASE,
)

_SENTENCE_END = re.compile(r"(?<=[a-z0-9]{2})\.\s|\s[|—]\s")


@dataclass(frozen=True)
class ImageInContext:
    """An image of a page with the visible text around it and a credit line, when one is near."""

    image: PageImage
    text: str | None
    credit: str | None


class _ContextParser(_TextParser):
    """Page text that also remembers where each image and each credit element stands in it."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.markers: list[tuple[str, int]] = []  # (raw URL, text offset)
        self.credits: list[tuple[int, list[str]]] = []
        self._credit_depth: list[tuple[str, int]] = []  # (tag, depth) of open credit elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        if self._skip is not None:
            return
        attr = _attr_map(attrs)
        offset = self._length
        if tag == "img":
            for name in _IMG_SRC_ATTRS:
                if attr.get(name):
                    self.markers.append((attr[name], offset))
            for name in _IMG_SRCSET_ATTRS:
                self.markers.extend((url, offset) for url in parse_srcset(attr.get(name, "")))
        elif tag == "source":
            for name in _SOURCE_SRCSET_ATTRS:
                self.markers.extend((url, offset) for url in parse_srcset(attr.get(name, "")))
        elif tag == "a" and attr.get("href") and _may_link_to_image(attr["href"]):
            self.markers.append((attr["href"], offset))
        if tag not in _VOID:
            names = f"{attr.get('class', '')} {attr.get('itemprop', '')} {attr.get('id', '')}"
            if self._credit_depth:
                self._credit_depth = [(t, d + (t == tag)) for t, d in self._credit_depth]
            if _CREDIT_CLASS.search(names):
                self.credits.append((offset, []))
                self._credit_depth.append((tag, 1))

    def handle_endtag(self, tag: str) -> None:
        super().handle_endtag(tag)
        if self._credit_depth:
            updated = [(t, d - (t == tag)) for t, d in self._credit_depth]
            self._credit_depth = [(t, d) for t, d in updated if d > 0]

    def handle_data(self, data: str) -> None:
        super().handle_data(data)
        if self._skip is None and self._credit_depth and self.credits:
            self.credits[-1][1].append(data)


def find_credit(text: str | None) -> str | None:
    """The first credit-like line in ``text`` ("Illustration: …", "Photo by …", "© …")."""
    if not text:
        return None
    found = _CREDIT_LINE.search(text)
    if found is None:
        return None
    # A credit line ends with its sentence when the text runs on (not at an initial: "A. B.").
    line = _SENTENCE_END.split(found.group(0), maxsplit=1)[0]
    return _clean(line)


def _window(text: str, at: int, around: int) -> str:
    start, end = max(0, at - around), min(len(text), at + around)
    if start > 0 and " " in text[start:at]:
        start = text.index(" ", start) + 1
    if end < len(text) and " " in text[at:end]:
        end = text.rindex(" ", at, end)
    return text[start:end].strip()


def images_in_context(html: str, base_url: str, *, around: int = 1500) -> list[ImageInContext]:
    """:func:`extract_images`, each image with up to ``around`` characters of visible text on
    either side of it and a credit line (from its caption, a credit element near it, or the
    text just after/before it). Meta images (``og:image``) not shown in the body get the
    beginning of the page text."""
    found = _ImageParser()
    found.run(html)
    parser = _ContextParser(limit=1_000_000)
    parser.run(html)
    base = _base(found, base_url)
    return _in_context(_images_found(found, base), parser, base, around)


def _in_context(
    images: list[PageImage], parser: _ContextParser, base: str, around: int
) -> list[ImageInContext]:
    """Each image with its text window and credit; ``base`` is what the page's relative URLs
    resolve against (:func:`_base`), as for the images themselves."""
    text = "".join(parser._parts)
    positions: dict[str, int] = {}
    for raw, offset in parser.markers:  # in document order: the first place of each URL stays
        url = _absolute(raw, base)
        if url is not None:
            positions.setdefault(url, offset)
    credits = [(offset, _clean("".join(parts))) for offset, parts in parser.credits]
    out: list[ImageInContext] = []
    for image in images:
        at = positions.get(image.url, 0)
        window = _window(text, at, around) if around else ""
        credit = find_credit(image.caption)
        if credit is None:
            reach = max(around, 200)
            near = [(abs(offset - at), c) for offset, c in credits if c and abs(offset - at) <= reach]
            credit = min(near)[1] if near else None
        if credit is None:
            credit = find_credit(text[at : at + 300]) or find_credit(text[max(0, at - 200) : at])
        out.append(ImageInContext(image=image, text=window or None, credit=credit))
    return out


# --------------------------------------------------------------------------- from a parsed tree


def _walk(root: Any, handlers: Sequence[HTMLParser]) -> None:
    """Replay an lxml HTML tree as the parser events of the handlers (start tags with their
    attributes, text, end tags; comments are skipped but not the text after them)."""
    from lxml import etree

    for event, element in etree.iterwalk(root, events=("start", "end", "comment", "pi")):
        tag = element.tag
        if event == "start":
            if not isinstance(tag, str):
                continue
            name = tag.lower()
            attrs: list[tuple[str, str | None]] = list(element.attrib.items())
            for handler in handlers:
                handler.handle_starttag(name, attrs)
            if element.text:
                for handler in handlers:
                    handler.handle_data(element.text)
            continue
        if event == "end" and isinstance(tag, str) and tag.lower() not in _VOID:
            for handler in handlers:
                handler.handle_endtag(tag.lower())
        if element.tail:
            for handler in handlers:
                handler.handle_data(element.tail)


def page_in_context(
    root: Any, base_url: str, *, around: int = 1500
) -> tuple[str | None, list[ImageInContext]]:
    """:func:`page_title` and :func:`images_in_context` of a page already parsed by lxml (e.g.
    a Scrapy response's ``response.selector.root``), in one walk of the tree instead of three
    parses of the text. Well-formed pages give the same results; on broken markup the
    recovery is lxml's (libxml2's) rather than :mod:`html.parser`'s."""
    images, title, context = _ImageParser(), _TitleParser(), _ContextParser(limit=1_000_000)
    _walk(root, (images, title, context))
    base = _base(images, base_url)
    return title.title or None, _in_context(_images_found(images, base), context, base, around)
