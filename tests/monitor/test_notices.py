"""Takedown notice drafts: every statutory element, filled from the finding; blanks only to sign."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from monitor.notices import BLANK, NoticeFacts, cn_notice, dmca_notice, dsa_notice


def facts(**overrides: object) -> NoticeFacts:
    values: dict[str, object] = {
        "finding_id": "f00d",
        "work_id": "w1",
        "work_title": "Summer Palace",
        "work_sha256": "a" * 64,
        "work_size": (384, 257),
        "work_registered_at": datetime(2026, 1, 2, tzinfo=UTC),
        "owner": "Ada Lovelace",
        "image_url": "https://cdn.example.org/img/summer.jpg",
        "image_sha256": "b" * 64,
        "page_url": "https://blog.example.org/poems/summer.html",
        "page_title": "A poem about summer",
        "fetched_at": datetime(2026, 3, 1, 12, tzinfo=UTC),
        "verdict": "partial",
        "similarity": 0.97,
        "flags": ("cropped", "visible_mark_cropped"),
        "stripped": ("visible_mark_cropped: the owner's visible mark falls outside the candidate",),
        "match_summary": "partial copy, similarity 0.97",
        "contact_email": "ada@example.org",
        "contact_address": "1 Analytical Row, London",
        "contact_phone": "+44 20 0000 0000",
    }
    values.update(overrides)
    return NoticeFacts(**values)  # type: ignore[arg-type]


def test_the_dmca_draft_has_each_element_of_512c3() -> None:
    text = dmca_notice(facts())
    # (i) a signature line, left blank for the owner
    assert re.search(r"Signature: _{10,}", text)
    # (ii) the copyrighted work
    assert "Summer Palace" in text and "a" * 64 in text
    # (iii) the infringing material and where it is
    assert "https://blog.example.org/poems/summer.html" in text
    assert "https://cdn.example.org/img/summer.jpg" in text and "b" * 64 in text
    # (iv) contact information
    assert "Ada Lovelace" in text and "ada@example.org" in text
    assert "1 Analytical Row, London" in text and "+44 20 0000 0000" in text
    # (v) the good-faith statement
    assert (
        "good faith belief that use of the material in the manner complained of is not\n"
        "  authorized by the copyright owner, its agent, or the law" in text
    )
    # (vi) accuracy, and authority under penalty of perjury
    assert "The information in this notification is accurate" in text
    assert "under penalty of perjury" in text and "authorized to act on behalf of the owner" in text
    for part in ("(i)", "(ii)", "(iii)", "(iv)", "(v)", "(vi)"):
        assert f"§512(c)(3)(A){part}" in text
    # blanks only for the signature and the date
    assert text.count(BLANK) == 2
    assert "visible_mark_cropped" in text


def test_missing_contact_details_are_left_blank_for_the_owner() -> None:
    text = dmca_notice(facts(contact_email=None, contact_address=None, contact_phone=None))
    assert re.search(r"Email: _{10,}", text) and re.search(r"Address: _{10,}", text)
    assert "Name: Ada Lovelace" in text  # the work's recorded owner


def test_the_dsa_draft_follows_article_16_2() -> None:
    text = dsa_notice(facts())
    assert "Article 16" in text
    for part in ("(a)", "(b)", "(c)", "(d)"):
        assert f"\n{part} " in text
    assert "illegal" in text and "reproduces" in text  # (a) substantiated explanation
    urls = text.split("(b)")[1].split("(c)")[0]
    assert (
        "https://blog.example.org/poems/summer.html" in urls
        and "https://cdn.example.org/img/summer.jpg" in urls
    )
    assert "Ada Lovelace" in text and "ada@example.org" in text  # (c)
    assert "bona fide belief" in text and "accurate and complete" in text  # (d)


def test_the_chinese_draft_follows_article_14() -> None:
    text = cn_notice(facts())
    assert "《信息网络传播权保护条例》第十四条" in text
    assert "权利人的姓名（名称）、联系方式和地址" in text
    assert "Ada Lovelace" in text and "ada@example.org" in text and "1 Analytical Row, London" in text
    assert "侵权作品的名称和网络地址" in text
    assert "作品名称：Summer Palace" in text
    assert "网络地址：https://blog.example.org/poems/summer.html" in text
    assert "网络地址：https://cdn.example.org/img/summer.jpg" in text
    assert "构成侵权的初步证明材料" in text and "b" * 64 in text
    assert "对通知书的真实性负责" in text
    assert re.search(r"签名（盖章）：_{10,}", text)


@pytest.mark.parametrize("render", [dmca_notice, dsa_notice, cn_notice])
def test_drafts_are_deterministic(render: object) -> None:
    assert render(facts()) == render(facts())  # type: ignore[operator]
