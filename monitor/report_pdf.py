"""``report.pdf``: the human-readable report of an evidence bundle (reportlab).

Plain text (Helvetica and Courier, which ``pdftotext`` extracts), hashes on lines of their
own so they are never broken, and ``invariant=1`` so the same content gives the same bytes
(no creation time, a fixed document id). Text reportlab's standard fonts cannot draw (e.g.
Chinese page titles) is transliterated to ``?``; the bundle's JSON members hold it exactly.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

__all__ = ["ReportContent", "ReportSection", "render_report"]


@dataclass
class ReportSection:
    """A titled list of (label, value) rows; ``code=True`` rows are set in Courier (hashes, URLs)."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    code: bool = False
    note: str | None = None


@dataclass
class ReportContent:
    title: str
    subtitle: str
    sections: list[ReportSection]
    picture: bytes | None = None  # comparison.png
    picture_caption: str = ""


def _latin(text: str) -> str:
    """What the standard PDF fonts can show (WinAnsi); anything else becomes '?'."""
    return text.encode("cp1252", "replace").decode("cp1252")


def _para(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(_latin(text)).replace("\n", "<br/>"), style)


def render_report(content: ReportContent) -> bytes:
    """The PDF bytes; deterministic for equal ``content``."""
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=_latin(content.title),
        author="image-infringement-monitor",
        subject=_latin(content.subtitle),
        creator="image-infringement-monitor",
        invariant=1,
    )
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9, leading=11.5)
    label = ParagraphStyle("label", parent=body, fontName="Helvetica-Bold")
    code = ParagraphStyle(
        "code", parent=body, fontName="Courier", fontSize=7.5, leading=9.5, splitLongWords=1
    )
    story: list[object] = [
        _para(content.title, styles["Title"]),
        _para(content.subtitle, body),
        Spacer(1, 4 * mm),
    ]
    if content.picture:
        reader = ImageReader(io.BytesIO(content.picture))
        pw, ph = reader.getSize()
        width = min(doc.width, float(pw))
        story += [Image(io.BytesIO(content.picture), width=width, height=width * ph / pw)]
        if content.picture_caption:
            story.append(_para(content.picture_caption, body))
        story.append(Spacer(1, 3 * mm))
    for section in content.sections:
        story += _section(section, styles["Heading2"], body, label, code, doc.width)
    doc.build(story)
    return buf.getvalue()


def _section(
    section: ReportSection,
    heading: ParagraphStyle,
    body: ParagraphStyle,
    label: ParagraphStyle,
    code: ParagraphStyle,
    width: float,
) -> Sequence[object]:
    out: list[object] = [_para(section.title, heading)]
    if section.note:
        out.append(_para(section.note, body))
    if section.rows:
        value_style = code if section.code else body
        rows = [[_para(k, label), _para(v, value_style)] for k, v in section.rows]
        table = Table(rows, colWidths=[0.26 * width, 0.74 * width], hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                    ("LEFTPADDING", (0, 0), (-1, -1), 2),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 2),
                ]
            )
        )
        out.append(table)
    out.append(Spacer(1, 3 * mm))
    return out
