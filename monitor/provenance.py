"""Every provenance source an image file carries, parsed and raw.

:func:`read_provenance` reads, from the bytes alone (no pixel decoding):

* generator parameters: AUTOMATIC1111/Forge ``parameters`` (PNG text, or EXIF UserComment in
  JPEG/WebP), ComfyUI ``prompt``/``workflow`` JSON, InvokeAI ``invokeai_metadata`` /
  ``sd-metadata`` / ``Dream``, NovelAI ``Comment`` JSON with ``Software``/``Source``;
* EXIF (Artist, Copyright, UserComment, DateTimeOriginal, Software, ImageDescription, XP*);
* XMP (every property; the CMI ones are dc:creator, dc:rights, xmpRights:*, photoshop:Credit,
  Iptc4xmpCore:CreatorContactInfo, plus:Licensor/CopyrightOwner);
* IPTC IIM (Pillow's ``IptcImagePlugin``);
* C2PA manifest stores (``c2pa-python``): active manifest, actions, digital source type,
  signer, ingredients, validation state.

It never raises on odd metadata: a source that cannot be parsed becomes a line in
``warnings`` and the rest goes on. :meth:`Provenance.cmi` lists the copyright management
information (CMI) fields present, the set the attribution inspector compares.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

#: Raw values and text excerpts are cut to this many characters in parsed output.
MAX_TEXT = 20_000
_SHORT = 200

_MIME = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "HEIF": "image/heif",
    "GIF": "image/gif",
}

# EXIF tags (IFD0 and the Exif sub-IFD).
_EXIF_IFD = 0x8769
_IFD0_TAGS = {
    0x010E: "ImageDescription",
    0x010F: "Make",
    0x0110: "Model",
    0x0131: "Software",
    0x0132: "DateTime",
    0x013B: "Artist",
    0x8298: "Copyright",
    0x9C9B: "XPTitle",
    0x9C9C: "XPComment",
    0x9C9D: "XPAuthor",
    0x9C9E: "XPKeywords",
    0x9C9F: "XPSubject",
}
_EXIF_TAGS = {
    0x9003: "DateTimeOriginal",
    0x9004: "DateTimeDigitized",
    0x9286: "UserComment",
    0xA430: "CameraOwnerName",
    0xA420: "ImageUniqueID",
}

# IPTC IIM record 2 datasets.
_IPTC_NAMES = {
    (2, 5): "ObjectName",
    (2, 25): "Keywords",
    (2, 40): "SpecialInstructions",
    (2, 55): "DateCreated",
    (2, 60): "TimeCreated",
    (2, 80): "By-line",
    (2, 85): "By-lineTitle",
    (2, 105): "Headline",
    (2, 110): "Credit",
    (2, 115): "Source",
    (2, 116): "CopyrightNotice",
    (2, 118): "Contact",
    (2, 120): "Caption-Abstract",
    (2, 122): "Writer-Editor",
}

# XMP namespaces with their usual prefixes.
_XMP_NS = {
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://ns.adobe.com/xap/1.0/rights/": "xmpRights",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/": "Iptc4xmpCore",
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt",
    "http://ns.useplus.org/ldf/xmp/1.0/": "plus",
    "http://ns.adobe.com/xap/1.0/mm/": "xmpMM",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://creativecommons.org/ns#": "cc",
}
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

#: Copyright management information: (source, field) pairs whose presence the attribution
#: inspector compares between the registered published copy and a candidate.
CMI_EXIF = ("Artist", "Copyright", "XPAuthor")
CMI_XMP = (
    "dc:creator",
    "dc:rights",
    "xmpRights:Marked",
    "xmpRights:WebStatement",
    "xmpRights:UsageTerms",
    "xmpRights:Owner",
    "photoshop:Credit",
    "Iptc4xmpCore:CreatorContactInfo",
    "plus:Licensor",
    "plus:CopyrightOwner",
    "cc:license",
    "cc:attributionName",
)
CMI_IPTC = ("By-line", "CopyrightNotice", "Credit")
CMI_PNG = ("Author", "Copyright")

# PNG text keys with a generator meaning (everything else is kept as plain text).
_GENERATOR_KEYS = frozenset(
    {"parameters", "prompt", "workflow", "invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream"}
)


@dataclass
class Provenance:
    """What one file says about where it comes from.

    ``sources`` holds the parsed form per source (``a1111``, ``comfyui``, ``invokeai``,
    ``novelai``, ``png_text``, ``exif``, ``xmp``, ``iptc``, ``c2pa``); ``raw`` the bytes as found
    (to be stored by SHA-256); ``generation`` a normalised summary of the generator parameters
    when a generator wrote any.
    """

    format: str | None = None
    generation: dict[str, Any] | None = None
    sources: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def cmi(self) -> dict[str, str]:
        """The copyright management information present: ``"EXIF:Copyright" -> value``, ...;
        a C2PA manifest counts as ``"C2PA:manifest"``."""
        out: dict[str, str] = {}
        exif = self.sources.get("exif") or {}
        for name in CMI_EXIF:
            if _present(exif.get(name)):
                out[f"EXIF:{name}"] = _short(exif[name])
        xmp = self.sources.get("xmp") or {}
        for name in CMI_XMP:
            if _present(xmp.get(name)):
                out[f"XMP:{name}"] = _short(xmp[name])
        iptc = self.sources.get("iptc") or {}
        for name in CMI_IPTC:
            if _present(iptc.get(name)):
                out[f"IPTC:{name}"] = _short(iptc[name])
        png = self.sources.get("png_text") or {}
        for name in CMI_PNG:
            if _present(png.get(name)):
                out[f"PNG:{name}"] = _short(png[name])
        c2pa = self.sources.get("c2pa")
        if c2pa and c2pa.get("present"):
            signer = (
                (c2pa.get("signer") or {}).get("common_name") or c2pa.get("validation_state") or "present"
            )
            out["C2PA:manifest"] = _short(signer)
        return out

    def to_json(self) -> dict[str, Any]:
        """Parsed sources and warnings; raw blobs by name and size (their bytes go elsewhere)."""
        return {
            "format": self.format,
            "generation": self.generation,
            "sources": self.sources,
            "raw": {name: {"size": len(data)} for name, data in sorted(self.raw.items())},
            "warnings": list(self.warnings),
        }

    def summary(self) -> dict[str, Any]:
        """A compact form for generation-log items: generator summary, CMI and warnings."""
        body: dict[str, Any] = {"format": self.format}
        if self.generation:
            body["generation"] = self.generation
        cmi = self.cmi()
        if cmi:
            body["cmi"] = cmi
        if self.warnings:
            body["warnings"] = list(self.warnings)
        return body


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | tuple | dict):
        return any(_present(v) for v in (value.values() if isinstance(value, dict) else value))
    return True


def _short(value: Any) -> str:
    if isinstance(value, dict):
        value = next((v for v in value.values() if _present(v)), "")
    if isinstance(value, list | tuple):
        value = "; ".join(str(v) for v in value if _present(v))
    text = str(value).strip()
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT]


# ---------------------------------------------------------------------------- entry points


def read_provenance(data: bytes, *, c2pa: bool = True) -> Provenance:
    """Every provenance source in ``data``. Never raises: problems become ``warnings``."""
    prov = Provenance()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = Image.open(io.BytesIO(data))
        except Exception as exc:  # not an image Pillow knows: nothing to read but C2PA
            prov.warnings.append(f"image: cannot open ({type(exc).__name__}: {exc})")
            img = None
        if img is not None:
            with img:
                prov.format = (img.format or "").upper() or None
                _step(prov, "png_text", lambda: _read_text_chunks(img, prov))
                _step(prov, "exif", lambda: _read_exif(img, prov))
                _step(prov, "xmp", lambda: _read_xmp(img, prov))
                _step(prov, "iptc", lambda: _read_iptc(img, prov))
                _step(prov, "jumbf", lambda: _read_jumbf(img, prov))
    _step(prov, "generators", lambda: _read_generators(prov))
    if c2pa:
        _step(prov, "c2pa", lambda: _read_c2pa(data, prov))
    return prov


def read_cmi(data: bytes) -> dict[str, str]:
    """The copyright management information fields present in ``data``."""
    return read_provenance(data).cmi()


def _step(prov: Provenance, name: str, job: Any) -> None:
    try:
        job()
    except Exception as exc:  # odd metadata must never fail a registration
        prov.warnings.append(f"{name}: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------- containers


def _read_text_chunks(img: Image.Image, prov: Provenance) -> None:
    """PNG tEXt/zTXt/iTXt (and the text-ish ``info`` entries of WebP/GIF/JPEG comments)."""
    text: dict[str, str] = {}
    chunks = getattr(img, "text", None) if prov.format == "PNG" else None
    items = dict(chunks) if isinstance(chunks, dict) else {}
    if prov.format == "JPEG" and isinstance(img.info.get("comment"), bytes | str):
        items["comment"] = img.info["comment"]
    for key, value in items.items():
        if key.startswith("XML:com.adobe.xmp"):
            continue  # read as XMP
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        text[str(key)] = str(value)
    if not text:
        return
    prov.raw["png_text" if prov.format == "PNG" else "text"] = json.dumps(
        text, ensure_ascii=False, sort_keys=True
    ).encode()
    plain = {k: _cut(v) for k, v in text.items() if k not in _GENERATOR_KEYS}
    if plain:
        prov.sources["png_text" if prov.format == "PNG" else "text"] = plain
    prov.sources.setdefault("_text", text)  # for the generator parsers; removed after them


def _read_exif(img: Image.Image, prov: Provenance) -> None:
    exif = img.getexif()
    if not exif:
        return
    raw = img.info.get("exif")
    prov.raw["exif"] = raw if isinstance(raw, bytes) and raw else exif.tobytes()
    out: dict[str, Any] = {}
    for tag, name in _IFD0_TAGS.items():
        value = exif.get(tag)
        if value is not None:
            out[name] = _exif_value(name, value)
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception as exc:
        prov.warnings.append(f"exif: the Exif IFD cannot be read ({exc})")
        sub = {}
    for tag, name in _EXIF_TAGS.items():
        value = sub.get(tag)
        if value is not None:
            out[name] = _exif_value(name, value)
    prov.sources["exif"] = {k: v for k, v in out.items() if _present(v)}


def _exif_value(name: str, value: Any) -> Any:
    if name.startswith("XP") and isinstance(value, bytes | tuple | list):
        raw = bytes(value)
        return raw.decode("utf-16-le", "replace").rstrip("\x00").strip()
    if name == "UserComment" and isinstance(value, bytes):
        return decode_user_comment(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").rstrip("\x00").strip()
    if isinstance(value, str):
        return _cut(value.rstrip("\x00").strip())
    if isinstance(value, int | float):
        return value
    return _cut(str(value))


def decode_user_comment(value: bytes) -> str:
    """EXIF UserComment: an 8-byte charset code, then the text (A1111 writes ``UNICODE`` +
    UTF-16; writers disagree on its byte order, so both are tried)."""
    head, body = value[:8], value[8:]
    if head.startswith(b"UNICODE"):
        candidates = [body.decode(enc, "replace") for enc in ("utf-16-be", "utf-16-le")]
        best = max(candidates, key=lambda t: sum(ch.isprintable() or ch in "\n\r\t" for ch in t))
        return _cut(best.rstrip("\x00").strip())
    if head.startswith((b"ASCII", b"\x00\x00\x00\x00\x00\x00\x00\x00", b"JIS")):
        return _cut(body.decode("utf-8", "replace").rstrip("\x00").strip())
    return _cut(value.decode("utf-8", "replace").rstrip("\x00").strip())


def _xmp_packet(img: Image.Image) -> bytes | None:
    for key in ("xmp", "XML:com.adobe.xmp"):
        value = img.info.get(key)
        if isinstance(value, str):
            value = value.encode("utf-8")
        if isinstance(value, bytes) and value.strip():
            return value
    text = getattr(img, "text", None) if (img.format or "") == "PNG" else None
    if isinstance(text, dict):
        value = text.get("XML:com.adobe.xmp")
        if value:
            return str(value).encode("utf-8")
    return None


def _read_xmp(img: Image.Image, prov: Provenance) -> None:
    packet = _xmp_packet(img)
    if packet is None:
        return
    prov.raw["xmp"] = packet
    prov.sources["xmp"] = parse_xmp(packet)


def parse_xmp(packet: bytes) -> dict[str, Any]:
    """Every property of every ``rdf:Description`` as ``"prefix:Name" -> value`` (strings,
    lists for Seq/Bag, ``{lang: text}`` for Alt, dicts for structures)."""
    text = packet.decode("utf-8", "replace")
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise ValueError("XMP with a DOCTYPE or ENTITY declaration is not parsed")
    start = text.find("<x:xmpmeta")
    if start < 0:
        start = text.find("<rdf:RDF")
    end_meta = text.rfind("</x:xmpmeta>")
    if start >= 0 and end_meta > start:
        text = text[start : end_meta + len("</x:xmpmeta>")]
    elif start >= 0:
        end = text.rfind("</rdf:RDF>")
        text = text[start : end + len("</rdf:RDF>")] if end > start else text[start:]
    root = ET.fromstring(text)
    out: dict[str, Any] = {}
    for desc in root.iter(f"{{{_RDF}}}Description"):
        for attr, value in desc.attrib.items():
            key = _xmp_key(attr)
            if key and not attr.startswith(f"{{{_RDF}}}"):
                out[key] = value
        for child in desc:
            key = _xmp_key(child.tag)
            if key:
                out[key] = _xmp_value(child)
    return out


def _xmp_key(tag: str) -> str | None:
    if not tag.startswith("{"):
        return None
    ns, _, name = tag[1:].partition("}")
    if ns == _RDF:
        return None
    return f"{_XMP_NS.get(ns, ns)}:{name}"


def _xmp_value(elem: ET.Element) -> Any:
    resource = elem.get(f"{{{_RDF}}}resource")
    if resource is not None:
        return resource
    children = list(elem)
    if not children:
        attrs = {_xmp_key(k): v for k, v in elem.attrib.items() if _xmp_key(k)}
        if attrs:
            return attrs
        return (elem.text or "").strip()
    first = children[0]
    if first.tag in (f"{{{_RDF}}}Seq", f"{{{_RDF}}}Bag"):
        return [_xmp_value(li) for li in first]
    if first.tag == f"{{{_RDF}}}Alt":
        return {li.get(_XML_LANG, "x-default"): (li.text or "").strip() for li in first}
    if first.tag == f"{{{_RDF}}}Description":
        return _xmp_struct(first)
    if elem.get(f"{{{_RDF}}}parseType") == "Resource":
        return _xmp_struct(elem)
    return _xmp_struct(elem)


def _xmp_struct(elem: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, value in elem.attrib.items():
        key = _xmp_key(attr)
        if key:
            out[key] = value
    for child in elem:
        key = _xmp_key(child.tag)
        if key:
            out[key] = _xmp_value(child)
    return out


def _read_iptc(img: Image.Image, prov: Provenance) -> None:
    from PIL import IptcImagePlugin

    info = IptcImagePlugin.getiptcinfo(img)  # type: ignore[arg-type]
    if not info:
        return
    photoshop = img.info.get("photoshop")
    if isinstance(photoshop, dict) and isinstance(photoshop.get(0x0404), bytes):
        prov.raw["iptc"] = photoshop[0x0404]
    out: dict[str, Any] = {}
    for key, value in sorted(info.items()):
        name = _IPTC_NAMES.get(key, f"{key[0]}:{key[1]}")
        if key[0] != 2 or key == (2, 0):
            continue
        values = value if isinstance(value, list) else [value]
        texts = [_iptc_text(v) for v in values]
        out[name] = texts if len(texts) > 1 or name == "Keywords" else texts[0]
    prov.sources["iptc"] = out


def _iptc_text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    return str(value)


def _read_jumbf(img: Image.Image, prov: Provenance) -> None:
    """The raw C2PA manifest store (JUMBF): JPEG APP11 packets or the PNG ``caBX`` chunk."""
    if prov.format in ("JPEG", "MPO"):
        boxes: dict[bytes, list[tuple[int, bytes]]] = {}
        for marker, payload in getattr(img, "applist", []):
            if marker != "APP11" or not payload.startswith(b"JP") or len(payload) < 16:
                continue
            instance, seq = payload[2:4], int.from_bytes(payload[4:8], "big")
            boxes.setdefault(instance, []).append((seq, payload[8:]))
        for parts in boxes.values():
            parts.sort()
            joined = parts[0][1] + b"".join(p[8:] for _, p in parts[1:])
            if b"c2pa" in joined[:64]:
                prov.raw["c2pa"] = joined
                return


def _png_chunk(data: bytes, name: bytes) -> bytes | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == name:
            return data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return None
        pos += 12 + length
    return None


# ---------------------------------------------------------------------------- generators


def _read_generators(prov: Provenance) -> None:
    text: dict[str, str] = prov.sources.pop("_text", {})
    exif = prov.sources.get("exif") or {}
    parameters = text.get("parameters")
    if parameters is None and isinstance(exif.get("UserComment"), str) and "Steps:" in exif["UserComment"]:
        parameters = exif["UserComment"]  # A1111 writes JPEG/WebP parameters into UserComment
    if parameters:
        _parse_into(prov, "a1111", lambda: parse_a1111(parameters))
    if "prompt" in text or "workflow" in text:
        _parse_into(prov, "comfyui", lambda: parse_comfyui(text.get("prompt"), text.get("workflow")))
    if any(k in text for k in ("invokeai_metadata", "sd-metadata", "Dream")):
        _parse_into(prov, "invokeai", lambda: parse_invokeai(text))
    software = text.get("Software", "") + " " + str(exif.get("Software", ""))
    if "NovelAI" in software or ("Comment" in text and "NovelAI" in text.get("Source", "")):
        _parse_into(prov, "novelai", lambda: parse_novelai(text))
    for name in ("a1111", "comfyui", "invokeai", "novelai"):
        parsed = prov.sources.get(name)
        if isinstance(parsed, dict) and parsed.get("summary"):
            prov.generation = {"tool": name, **parsed["summary"]}
            break


def _parse_into(prov: Provenance, name: str, job: Any) -> None:
    try:
        prov.sources[name] = job()
    except Exception as exc:
        prov.warnings.append(f"{name}: cannot parse ({type(exc).__name__}: {exc})")


# A1111's own pattern for its ``key: value`` parameter line (values may be "quoted, with commas").
_A1111_PARAM = re.compile(r'\s*([\w ./\-]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_LORA_TAG = re.compile(r"<(lora|lyco):([^:>]+)(?::([^:>]+))?[^>]*>", re.IGNORECASE)


def parse_a1111(text: str) -> dict[str, Any]:
    """AUTOMATIC1111 / Forge ``parameters``: prompt, ``Negative prompt:``, then one line of
    ``Key: value`` pairs starting with ``Steps:``."""
    lines = text.strip().split("\n")
    params_line = ""
    if lines and re.match(r"^\s*Steps:", lines[-1]):
        params_line = lines.pop()
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line[len("Negative prompt:") :].lstrip()
        target.append(line)
    params: dict[str, str] = {}
    for key, value in _A1111_PARAM.findall(params_line):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        params[key.strip()] = value
    prompt = "\n".join(prompt_lines).strip()
    summary: dict[str, Any] = {
        "prompt": _cut(prompt),
        "negative_prompt": _cut("\n".join(negative_lines).strip()),
    }
    _put_number(summary, "steps", params.get("Steps"), int)
    if "Sampler" in params:
        summary["sampler"] = params["Sampler"]
    if "Schedule type" in params:
        summary["scheduler"] = params["Schedule type"]
    _put_number(summary, "cfg_scale", params.get("CFG scale"), float)
    _put_number(summary, "seed", params.get("Seed"), int)
    size = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", params.get("Size", ""))
    if size:
        summary["width"], summary["height"] = int(size.group(1)), int(size.group(2))
    if "Model hash" in params:
        summary["model_hash"] = params["Model hash"]
    if "Model" in params:
        summary["model"] = params["Model"]
    loras: dict[str, dict[str, Any]] = {}
    for _, name, weight in _LORA_TAG.findall(prompt):
        entry = loras.setdefault(name, {"name": name})
        if weight:
            _put_number(entry, "weight", weight, float)
    for part in str(params.get("Lora hashes", "")).split(","):
        name, _, digest = part.partition(":")
        if name.strip():
            loras.setdefault(name.strip(), {"name": name.strip()})["hash"] = digest.strip()
    if loras:
        summary["loras"] = list(loras.values())
    if "Version" in params:
        summary["version"] = params["Version"]
    return {"summary": summary, "params": params}


def _put_number(out: dict[str, Any], key: str, value: Any, kind: type) -> None:
    if value is None:
        return
    try:
        out[key] = kind(str(value).strip())
    except ValueError:
        out[key] = value


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _load_json(text: str | None) -> Any:
    if text is None:
        return None
    return json.loads(text)


def parse_comfyui(prompt_text: str | None, workflow_text: str | None) -> dict[str, Any]:
    """ComfyUI's API graph (``prompt``: node id -> class_type/inputs) and UI graph
    (``workflow``). The summary takes sampler settings, checkpoints, LoRAs and prompt texts
    from the usual nodes."""
    prompt = _load_json(prompt_text)
    workflow = _load_json(workflow_text)
    summary: dict[str, Any] = {}
    nodes = prompt if isinstance(prompt, dict) else {}
    classes: list[str] = []
    texts: list[str] = []
    loras: list[dict[str, Any]] = []
    for node_id in sorted(nodes, key=lambda k: (len(str(k)), str(k))):
        node = nodes[node_id]
        if not isinstance(node, dict):
            continue
        cls = str(node.get("class_type", ""))
        classes.append(cls)
        inputs = _dict(node.get("inputs"))
        if "KSampler" in cls or "SamplerCustom" in cls:
            for src, dst in (
                ("seed", "seed"),
                ("noise_seed", "seed"),
                ("steps", "steps"),
                ("cfg", "cfg_scale"),
                ("sampler_name", "sampler"),
                ("scheduler", "scheduler"),
                ("denoise", "denoise"),
            ):
                if src in inputs and not isinstance(inputs[src], list):
                    summary.setdefault(dst, inputs[src])
        if "CheckpointLoader" in cls and isinstance(inputs.get("ckpt_name"), str):
            summary.setdefault("model", inputs["ckpt_name"])
        if "Lora" in cls and isinstance(inputs.get("lora_name"), str):
            loras.append({"name": inputs["lora_name"], "weight": inputs.get("strength_model")})
        if "CLIPTextEncode" in cls:
            value = inputs.get("text") or inputs.get("text_g")
            if isinstance(value, str):
                texts.append(_cut(value))
        if "EmptyLatentImage" in cls:
            for key in ("width", "height"):
                if isinstance(inputs.get(key), int):
                    summary.setdefault(key, inputs[key])
    if texts:
        summary["prompt"] = texts[0]
        if len(texts) > 1:
            summary["negative_prompt"] = texts[1]
        summary["prompt_texts"] = texts
    if loras:
        summary["loras"] = loras
    out: dict[str, Any] = {"summary": summary, "node_classes": sorted(set(classes)), "nodes": len(nodes)}
    if isinstance(workflow, dict):
        out["workflow_nodes"] = len(workflow.get("nodes") or [])
    out["prompt"] = prompt
    out["workflow"] = workflow
    return out


_DREAM_FLAGS = {
    "-s": ("steps", int),
    "-S": ("seed", int),
    "-W": ("width", int),
    "-H": ("height", int),
    "-C": ("cfg_scale", float),
    "-A": ("sampler", str),
}


def parse_invokeai(text: dict[str, str]) -> dict[str, Any]:
    """InvokeAI 3+ ``invokeai_metadata`` JSON, 2.x ``sd-metadata`` JSON, 1.x ``Dream`` line."""
    out: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    if "invokeai_metadata" in text:
        meta = _load_json(text["invokeai_metadata"])
        out["invokeai_metadata"] = meta
        if isinstance(meta, dict):
            for src, dst in (
                ("positive_prompt", "prompt"),
                ("negative_prompt", "negative_prompt"),
                ("seed", "seed"),
                ("steps", "steps"),
                ("cfg_scale", "cfg_scale"),
                ("scheduler", "sampler"),
                ("width", "width"),
                ("height", "height"),
            ):
                if src in meta:
                    summary[dst] = meta[src]
            model = meta.get("model")
            if isinstance(model, dict):
                summary["model"] = model.get("name") or model.get("model_name")
                if model.get("hash"):
                    summary["model_hash"] = model["hash"]
            elif isinstance(model, str):
                summary["model"] = model
            if isinstance(meta.get("loras"), list):
                summary["loras"] = [
                    {
                        "name": (lora.get("model") or lora.get("lora") or {}).get("name")
                        if isinstance(lora.get("model") or lora.get("lora"), dict)
                        else lora.get("model"),
                        "weight": lora.get("weight"),
                    }
                    for lora in meta["loras"]
                    if isinstance(lora, dict)
                ]
            if meta.get("app_version"):
                summary["version"] = meta["app_version"]
    if "sd-metadata" in text:
        meta = _load_json(text["sd-metadata"])
        out["sd_metadata"] = meta
        if isinstance(meta, dict):
            image = _dict(meta.get("image"))
            prompt = image.get("prompt")
            if isinstance(prompt, list):
                prompt = " ".join(str(p.get("prompt", "")) for p in prompt if isinstance(p, dict))
            if prompt:
                summary.setdefault("prompt", prompt)
            for key in ("seed", "steps", "cfg_scale", "sampler", "width", "height"):
                if key in image:
                    summary.setdefault(key, image[key])
            if meta.get("model_weights"):
                summary.setdefault("model", meta["model_weights"])
            if meta.get("model_hash"):
                summary.setdefault("model_hash", meta["model_hash"])
    if "Dream" in text:
        dream = text["Dream"]
        out["dream"] = dream
        match = re.match(r'\s*"((?:\\.|[^"\\])*)"(.*)', dream)
        if match:
            summary.setdefault("prompt", match.group(1))
            args = match.group(2).split()
            for flag, value in itertools.pairwise(args):
                if flag in _DREAM_FLAGS:
                    key, kind = _DREAM_FLAGS[flag]
                    if key not in summary:
                        _put_number(summary, key, value, kind)
    out["summary"] = summary
    return out


def parse_novelai(text: dict[str, str]) -> dict[str, Any]:
    """NovelAI: ``Software`` "NovelAI", ``Source`` (the model), ``Description`` (the prompt) and
    ``Comment`` (JSON of the generation settings, ``uc`` being the negative prompt)."""
    comment = _load_json(text.get("Comment")) if text.get("Comment") else None
    summary: dict[str, Any] = {}
    if isinstance(comment, dict):
        for src, dst in (
            ("prompt", "prompt"),
            ("uc", "negative_prompt"),
            ("steps", "steps"),
            ("scale", "cfg_scale"),
            ("seed", "seed"),
            ("sampler", "sampler"),
            ("width", "width"),
            ("height", "height"),
            ("strength", "strength"),
            ("noise_schedule", "scheduler"),
        ):
            if src in comment:
                summary[dst] = comment[src]
    if "prompt" not in summary and text.get("Description"):
        summary["prompt"] = _cut(text["Description"])
    if text.get("Source"):
        summary["model"] = text["Source"]
    return {
        "summary": summary,
        "software": text.get("Software"),
        "source": text.get("Source"),
        "title": text.get("Title"),
        "comment": comment,
    }


# ---------------------------------------------------------------------------- C2PA


def _read_c2pa(data: bytes, prov: Provenance) -> None:
    """The C2PA manifest store, read and validated by ``c2pa-python``."""
    if prov.format == "PNG":
        chunk = _png_chunk(data, b"caBX")
        if chunk:
            prov.raw["c2pa"] = chunk
    if "c2pa" not in prov.raw and b"c2pa" not in data and b"jumb" not in data:
        return  # no JUMBF anywhere: no manifest (and no native call)
    mime = _MIME.get(prov.format or "")
    if mime is None:
        if "c2pa" in prov.raw:
            prov.sources["c2pa"] = {
                "present": True,
                "error": f"{prov.format} is not read by the C2PA library",
            }
        return
    try:
        import c2pa as c2pa_lib
    except ImportError:
        prov.warnings.append("c2pa: c2pa-python is not installed; manifests are not read")
        if "c2pa" in prov.raw:
            prov.sources["c2pa"] = {"present": True, "error": "c2pa-python is not installed"}
        return
    try:
        reader = c2pa_lib.Reader.try_create(mime, io.BytesIO(data))
    except Exception as exc:  # C2paError and friends: a manifest is there but cannot be read
        if "c2pa" in prov.raw:
            prov.sources["c2pa"] = {"present": True, "validation_state": "Invalid", "error": str(exc)[:500]}
            prov.warnings.append(f"c2pa: the manifest store cannot be read ({str(exc)[:200]})")
        return
    if reader is None:
        return
    try:
        with reader:
            store = json.loads(reader.json())
    except Exception as exc:
        prov.sources["c2pa"] = {"present": True, "validation_state": "Invalid", "error": str(exc)[:500]}
        prov.warnings.append(f"c2pa: the manifest store cannot be read ({str(exc)[:200]})")
        return
    prov.raw["c2pa_json"] = json.dumps(store, sort_keys=True).encode()
    prov.sources["c2pa"] = parse_c2pa_store(store)


def parse_c2pa_store(store: dict[str, Any]) -> dict[str, Any]:
    """The facts of a manifest store (as ``Reader.json()`` gives it) worth keeping."""
    manifests = store.get("manifests") or {}
    label = store.get("active_manifest")
    active = manifests.get(label) if isinstance(manifests, dict) else None
    out: dict[str, Any] = {
        "present": True,
        "active_manifest": label,
        "manifests": len(manifests) if isinstance(manifests, dict) else 0,
        "validation_state": store.get("validation_state"),
        "validation_status": [
            s.get("code") for s in store.get("validation_status") or [] if isinstance(s, dict)
        ],
    }
    if not isinstance(active, dict):
        return out
    generator = active.get("claim_generator") or [
        " ".join(str(v) for v in (g.get("name"), g.get("version")) if v)
        for g in active.get("claim_generator_info") or []
        if isinstance(g, dict)
    ]
    out["claim_generator"] = generator
    out["title"] = active.get("title")
    sig = active.get("signature_info") or {}
    out["signer"] = {
        "issuer": sig.get("issuer"),
        "common_name": sig.get("common_name"),
        "time": sig.get("time"),
        "alg": sig.get("alg"),
    }
    actions: list[dict[str, Any]] = []
    authors: list[str] = []
    for assertion in active.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        label_a = str(assertion.get("label", ""))
        data = _dict(assertion.get("data"))
        if label_a.startswith("c2pa.actions"):
            for action in data.get("actions") or []:
                if isinstance(action, dict):
                    agent = action.get("softwareAgent")
                    actions.append(
                        {
                            "action": action.get("action"),
                            "digital_source_type": action.get("digitalSourceType"),
                            "software_agent": agent.get("name") if isinstance(agent, dict) else agent,
                            "when": action.get("when"),
                        }
                    )
        elif label_a.startswith("stds.schema-org.CreativeWork"):
            for author in data.get("author") or []:
                if isinstance(author, dict) and author.get("name"):
                    authors.append(str(author["name"]))
    out["actions"] = actions
    sources = [a["digital_source_type"] for a in actions if a.get("digital_source_type")]
    out["digital_source_type"] = sources[0] if sources else None
    if authors:
        out["authors"] = authors
    out["ingredients"] = [
        {
            "title": ing.get("title"),
            "format": ing.get("format"),
            "relationship": ing.get("relationship"),
            "instance_id": ing.get("instance_id"),
        }
        for ing in active.get("ingredients") or []
        if isinstance(ing, dict)
    ]
    return out
