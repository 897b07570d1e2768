"""Takedown notice drafts filled from a finding.

* :func:`dmca_notice` — a notification under 17 U.S.C. §512(c)(3)(A), with its six elements
  in the statute's order: (i) signature, (ii) identification of the copyrighted work,
  (iii) identification of the infringing material and where it is, (iv) contact
  information, (v) the good-faith statement, (vi) the accuracy statement and, under penalty
  of perjury, the authority to act.
* :func:`dsa_notice` — a notice under Art. 16(2) of the EU Digital Services Act
  (Regulation (EU) 2022/2065): (a) a substantiated explanation why the content is illegal,
  (b) the exact URLs, (c) the name and email address of the notifier, (d) the statement of
  bona fide belief that the notice is accurate and complete.
* :func:`cn_notice` — 通知书 under Art. 14 of China's 《信息网络传播权保护条例》: 权利人的姓名
  （名称）、联系方式和地址; 要求删除或者断开链接的侵权作品的名称和网络地址; 构成侵权的初步证明材料.

Everything the monitor knows is filled in; blanks (``______``) are left only for what the
owner must supply or sign: the signature and date, and contact details not in the settings.
The drafts contain no export time, so the same finding gives the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["NoticeFacts", "cn_notice", "dmca_notice", "dsa_notice"]

BLANK = "______________________________"


@dataclass(frozen=True, kw_only=True)
class NoticeFacts:
    """What a notice states, gathered from the finding, the work and the settings."""

    finding_id: str
    work_id: str
    work_title: str | None
    work_sha256: str
    work_size: tuple[int, int]
    work_registered_at: datetime | None
    owner: str | None  # the work's recorded owner
    image_url: str
    image_sha256: str
    page_url: str | None
    page_title: str | None
    fetched_at: datetime | None
    verdict: str
    similarity: float
    flags: tuple[str, ...]
    stripped: tuple[str, ...]  # attribution-stripping flags with their reasons
    match_summary: str
    evidence_name: str = "the attached evidence bundle"
    contact_name: str | None = None
    contact_email: str | None = None
    contact_address: str | None = None
    contact_phone: str | None = None

    @property
    def holder(self) -> str | None:
        return self.contact_name or self.owner

    @property
    def locations(self) -> list[str]:
        urls = [self.image_url]
        if self.page_url and self.page_url != self.image_url:
            urls.insert(0, self.page_url)
        return urls


def _v(value: object | None) -> str:
    return BLANK if value in (None, "") else str(value)


def _date(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "unknown"


def _work_lines(f: NoticeFacts) -> list[str]:
    w, h = f.work_size
    return [
        f"  Title: {f.work_title or '(untitled)'}",
        f"  Registered in the owner's image monitor as work {f.work_id} on {_date(f.work_registered_at)}",
        f"  Image of {w}x{h} pixels, SHA-256 {f.work_sha256}",
    ]


def _material_lines(f: NoticeFacts) -> list[str]:
    lines = []
    if f.page_url:
        title = f' ("{f.page_title}")' if f.page_title else ""
        lines.append(f"  Web page: {f.page_url}{title}")
    lines.append(f"  Image URL: {f.image_url}")
    lines.append(f"  Image as fetched on {_date(f.fetched_at)}: SHA-256 {f.image_sha256}")
    lines.append(f"  How it copies the work: {f.match_summary}")
    for reason in f.stripped:
        lines.append(f"  Attribution removed: {reason}")
    return lines


def dmca_notice(f: NoticeFacts) -> str:
    """The DMCA notification draft (17 U.S.C. §512(c)(3)(A)(i)–(vi))."""
    lines = [
        "NOTIFICATION OF CLAIMED INFRINGEMENT (17 U.S.C. § 512(c)(3))",
        "",
        "To the designated agent of the service provider hosting the material identified below:",
        "",
        "1. Identification of the copyrighted work claimed to have been infringed (§512(c)(3)(A)(ii)):",
        *_work_lines(f),
        "",
        "2. Identification of the material that is claimed to be infringing and that is to be removed or",
        "   access to which is to be disabled, and information reasonably sufficient to locate it",
        "   (§512(c)(3)(A)(iii)):",
        *_material_lines(f),
        "",
        "3. Contact information of the complaining party (§512(c)(3)(A)(iv)):",
        f"  Name: {_v(f.holder)}",
        f"  Address: {_v(f.contact_address)}",
        f"  Telephone: {_v(f.contact_phone)}",
        f"  Email: {_v(f.contact_email)}",
        "",
        "4. Good-faith statement (§512(c)(3)(A)(v)):",
        "  I have a good faith belief that use of the material in the manner complained of is not",
        "  authorized by the copyright owner, its agent, or the law.",
        "",
        "5. Accuracy and authority (§512(c)(3)(A)(vi)):",
        "  The information in this notification is accurate, and under penalty of perjury, I am the",
        "  owner, or authorized to act on behalf of the owner, of an exclusive right that is allegedly",
        "  infringed.",
        "",
        "6. Signature (§512(c)(3)(A)(i)) — physical or electronic signature of the owner or of a person",
        "   authorized to act on behalf of the owner:",
        f"  Signature: {BLANK}",
        f"  Name: {_v(f.holder)}",
        f"  Date: {BLANK}",
        "",
        f"Evidence: {f.evidence_name} (finding {f.finding_id}), signed manifest of every file.",
    ]
    return "\n".join(lines) + "\n"


def dsa_notice(f: NoticeFacts) -> str:
    """The EU Digital Services Act notice draft (Art. 16(2)(a)–(d))."""
    reasons = [
        "  The content reproduces, without the rights holder's authorisation, a copyright-protected",
        "  image, which infringes the exclusive right of reproduction and of making available to the",
        "  public (Directive 2001/29/EC, Arts. 2 and 3). The copy was identified by comparing it with the",
        "  registered original:",
        *_material_lines(f),
        "  The registered work:",
        *_work_lines(f),
    ]
    urls = [f"  {url}" for url in f.locations]
    lines = [
        "NOTICE OF ILLEGAL CONTENT — Regulation (EU) 2022/2065 (Digital Services Act), Article 16",
        "",
        "(a) Explanation of the reasons why the information is considered illegal content:",
        *reasons,
        "",
        "(b) Exact electronic location of the information (URLs):",
        *urls,
        "",
        "(c) Name and email address of the individual or entity submitting the notice:",
        f"  Name: {_v(f.holder)}",
        f"  Email: {_v(f.contact_email)}",
        "",
        "(d) Statement of good faith:",
        "  I confirm my bona fide belief that the information and allegations contained in this notice",
        "  are accurate and complete.",
        "",
        f"  Signature: {BLANK}",
        f"  Date: {BLANK}",
        "",
        f"Evidence: {f.evidence_name} (finding {f.finding_id}).",
    ]
    return "\n".join(lines) + "\n"


_CN_VERDICTS = {
    "exact": "与登记作品完全相同",
    "near_duplicate": "与登记作品近似相同",
    "partial": "复制了登记作品的一部分",
}


def _cn_verdict(f: NoticeFacts) -> str:
    verdict = _CN_VERDICTS.get(f.verdict, f.verdict)
    return f"该图片{verdict}，相似度 {f.similarity:.2f}"


def cn_notice(f: NoticeFacts) -> str:
    """The complaint draft in Chinese under Art. 14 of the Regulation on the Protection of the
    Right to Network Dissemination of Information (信息网络传播权保护条例 第十四条)."""
    w, h = f.work_size
    title = f.work_title or "（无题）"
    urls = [f"  网络地址：{url}" for url in f.locations]
    stripped = [f"  权利管理信息被删除：{reason}" for reason in f.stripped]
    lines = [
        "通知书（删除或者断开链接）",
        "依据《信息网络传播权保护条例》第十四条",
        "",
        "一、权利人的姓名（名称）、联系方式和地址",
        f"  权利人姓名（名称）：{_v(f.holder)}",
        f"  联系方式（电话）：{_v(f.contact_phone)}",
        f"  电子邮箱：{_v(f.contact_email)}",
        f"  地址：{_v(f.contact_address)}",
        "",
        "二、要求删除或者断开链接的侵权作品的名称和网络地址",
        f"  作品名称：{title}（美术/摄影作品，{w}x{h} 像素，SHA-256 {f.work_sha256}）",
        *urls,
        f"  页面标题：{f.page_title}" if f.page_title else "  页面标题：（无）",
        "",
        "三、构成侵权的初步证明材料",
        f"  1. 权利人作品登记记录：作品编号 {f.work_id}，登记时间 {_date(f.work_registered_at)}；",
        f"  2. 侵权图片于 {_date(f.fetched_at)} 抓取，SHA-256 {f.image_sha256}；",
        f"  3. 比对结论：{_cn_verdict(f)}（{f.match_summary}）；",
        *stripped,
        f"  4. 随附证据包（发现编号 {f.finding_id}），含原图、抓取副本、WARC 存档、比对图、",
        "     作品创作过程记录及经签名的文件清单。",
        "",
        "权利人保证本通知书内容真实，并对通知书的真实性负责。请贵方依法删除上述侵权作品或者断开与其的链接。",
        "",
        f"  权利人签名（盖章）：{BLANK}",
        f"  日期：{BLANK}",
    ]
    return "\n".join(lines) + "\n"
