"""Provenance: generator parameters, EXIF/XMP/IPTC and C2PA, parsed and raw, never fatal."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from monitor.provenance import decode_user_comment, parse_a1111, read_provenance
from tests.monitor.metadata_helpers import (
    A1111_PARAMETERS,
    COMFY_PROMPT,
    COMFY_WORKFLOW,
    INVOKEAI_METADATA,
    NOVELAI_TEXT,
    c2pa_signed_jpeg,
    jpeg_with_cmi,
    png_with_text,
)


def small(color: tuple[int, int, int] = (120, 80, 40)) -> Image.Image:
    return Image.new("RGB", (48, 32), color)


def plain_jpeg() -> bytes:
    buf = io.BytesIO()
    small().save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_a1111_parameters_are_parsed_and_kept_raw() -> None:
    data = png_with_text(small(), {"parameters": A1111_PARAMETERS})
    prov = read_provenance(data)
    gen = prov.generation
    assert gen is not None and gen["tool"] == "a1111"
    assert gen["prompt"].startswith("masterpiece, a lighthouse at dusk")
    assert gen["negative_prompt"] == "blurry, lowres"
    assert (gen["steps"], gen["sampler"], gen["cfg_scale"], gen["seed"]) == (
        28,
        "DPM++ 2M Karras",
        6.5,
        1234567890,
    )
    assert (gen["width"], gen["height"]) == (832, 1216)
    assert gen["model_hash"] == "31e35c80fc" and gen["model"] == "sd_xl_base_1.0"
    assert gen["loras"] == [
        {"name": "oilpaint", "weight": 0.7, "hash": "a1b2c3"},
        {"name": "seaside", "weight": 1.1, "hash": "d4e5f6"},
    ]
    assert json.loads(prov.raw["png_text"])["parameters"] == A1111_PARAMETERS
    assert prov.warnings == []


def test_a1111_without_negative_prompt_or_params_line() -> None:
    parsed = parse_a1111("just a prompt\nover two lines")
    assert parsed["summary"]["prompt"] == "just a prompt\nover two lines"
    assert parsed["summary"]["negative_prompt"] == "" and parsed["params"] == {}


def test_a1111_in_a_jpeg_user_comment() -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111_PARAMETERS.encode("utf-16-be")
    buf = io.BytesIO()
    small().save(buf, "JPEG", exif=exif.tobytes())
    prov = read_provenance(buf.getvalue())
    assert prov.generation is not None and prov.generation["seed"] == 1234567890
    # little-endian writers exist too
    assert decode_user_comment(b"UNICODE\x00" + "Steps: 5".encode("utf-16-le")) == "Steps: 5"


def test_comfyui_prompt_and_workflow() -> None:
    data = png_with_text(
        small(), {"prompt": json.dumps(COMFY_PROMPT), "workflow": json.dumps(COMFY_WORKFLOW)}
    )
    prov = read_provenance(data)
    comfy = prov.sources["comfyui"]
    assert comfy["nodes"] == 6 and comfy["workflow_nodes"] == 3
    assert "KSampler" in comfy["node_classes"]
    assert comfy["prompt"] == COMFY_PROMPT  # the whole graph is kept
    gen = prov.generation
    assert gen is not None and gen["tool"] == "comfyui"
    assert (gen["seed"], gen["steps"], gen["cfg_scale"], gen["sampler"]) == (42, 30, 7.5, "euler")
    assert gen["model"] == "dreamshaper_8.safetensors"
    assert gen["prompt"] == "a red fox in snow" and gen["negative_prompt"] == "watermark, text"
    assert gen["loras"] == [{"name": "fur.safetensors", "weight": 0.8}]
    assert (gen["width"], gen["height"]) == (768, 512)


def test_novelai_comment_software_source() -> None:
    prov = read_provenance(png_with_text(small(), NOVELAI_TEXT))
    gen = prov.generation
    assert gen is not None and gen["tool"] == "novelai"
    assert gen["prompt"] == "1girl, reading in a library" and gen["negative_prompt"] == "lowres, bad anatomy"
    assert (gen["steps"], gen["cfg_scale"], gen["seed"], gen["sampler"]) == (
        23,
        5.0,
        987654321,
        "k_euler_ancestral",
    )
    assert gen["model"] == "NovelAI Diffusion V4 4F6C2E3A"
    assert prov.sources["novelai"]["software"] == "NovelAI"


def test_invokeai_metadata_sd_metadata_and_dream() -> None:
    prov = read_provenance(png_with_text(small(), {"invokeai_metadata": json.dumps(INVOKEAI_METADATA)}))
    gen = prov.generation
    assert gen is not None and gen["tool"] == "invokeai"
    assert gen["prompt"] == "a castle on a hill" and gen["seed"] == 77 and gen["model"] == "juggernautXL"
    assert gen["loras"] == [{"name": "castles", "weight": 0.6}]

    legacy = {
        "model_weights": "stable-diffusion-1.5",
        "image": {"prompt": [{"prompt": "an owl", "weight": 1}], "seed": 5, "steps": 50, "sampler": "k_lms"},
    }
    prov = read_provenance(png_with_text(small(), {"sd-metadata": json.dumps(legacy)}))
    assert prov.generation is not None
    assert (prov.generation["prompt"], prov.generation["seed"], prov.generation["model"]) == (
        "an owl",
        5,
        "stable-diffusion-1.5",
    )

    prov = read_provenance(
        png_with_text(small(), {"Dream": '"a moth" -s 50 -S 3 -W 512 -H 512 -C 7.5 -A k_lms'})
    )
    assert prov.generation is not None
    assert (prov.generation["prompt"], prov.generation["steps"], prov.generation["seed"]) == ("a moth", 50, 3)
    assert prov.generation["cfg_scale"] == 7.5 and prov.generation["sampler"] == "k_lms"


def test_exif_xmp_iptc_fields_and_cmi() -> None:
    prov = read_provenance(jpeg_with_cmi(small()))
    exif = prov.sources["exif"]
    assert exif["Artist"] == "Ada Lovelace" and exif["Copyright"] == "(c) 2025 Ada Lovelace"
    assert exif["Software"] == "Krita 5.2" and exif["ImageDescription"] == "Harbour at dusk"
    assert exif["DateTimeOriginal"] == "2025:01:02 03:04:05"
    assert exif["UserComment"] == "painted over three evenings"
    xmp = prov.sources["xmp"]
    assert xmp["dc:creator"] == ["Ada Lovelace"]
    assert xmp["dc:rights"] == {"x-default": "(c) 2025 Ada Lovelace"}
    assert xmp["xmpRights:Marked"] == "True" and xmp["photoshop:Credit"] == "Ada Draws"
    assert xmp["Iptc4xmpCore:CreatorContactInfo"] == {"Iptc4xmpCore:CiEmailWork": "ada@example.org"}
    iptc = prov.sources["iptc"]
    assert iptc["By-line"] == "Ada Lovelace" and iptc["CopyrightNotice"] == "(c) 2025 Ada Lovelace"
    assert {"exif", "xmp", "iptc"} <= set(prov.raw)
    assert set(prov.cmi()) == {
        "EXIF:Artist",
        "EXIF:Copyright",
        "XMP:dc:creator",
        "XMP:dc:rights",
        "XMP:xmpRights:Marked",
        "XMP:xmpRights:WebStatement",
        "XMP:photoshop:Credit",
        "XMP:Iptc4xmpCore:CreatorContactInfo",
        "IPTC:By-line",
        "IPTC:CopyrightNotice",
        "IPTC:Credit",
    }
    assert "C2PA:manifest" not in prov.cmi()


def test_a_plain_file_has_no_provenance() -> None:
    prov = read_provenance(plain_jpeg())
    assert prov.generation is None and prov.cmi() == {} and prov.warnings == []


@pytest.mark.parametrize(
    "chunks",
    [
        {"prompt": "{not json", "workflow": "[1, 2"},
        {"invokeai_metadata": "nope"},
        {"Software": "NovelAI", "Comment": "{]"},
        {"XML:com.adobe.xmp": '<!DOCTYPE x [<!ENTITY a "b">]><x:xmpmeta xmlns:x="adobe:ns:meta/"/>'},
        {"XML:com.adobe.xmp": "<x:xmpmeta><unclosed>"},
    ],
)
def test_odd_metadata_becomes_a_warning_never_an_error(chunks: dict[str, str]) -> None:
    prov = read_provenance(png_with_text(small(), chunks, itxt=("XML:com.adobe.xmp",)))
    assert prov.warnings, prov
    assert prov.format == "PNG"


def test_bytes_that_are_no_image_give_a_warning() -> None:
    prov = read_provenance(b"\x00\x01garbage")
    assert prov.format is None and prov.warnings


def test_c2pa_manifest_is_read_with_actions_signer_ingredients_and_validation() -> None:
    signed = c2pa_signed_jpeg(plain_jpeg(), ingredient=plain_jpeg())
    prov = read_provenance(signed)
    c2pa = prov.sources["c2pa"]
    assert c2pa["present"] is True
    assert c2pa["signer"]["common_name"] == "Ada Signer"
    assert c2pa["signer"]["issuer"] == "Ada Draws Studio"
    actions = [a["action"] for a in c2pa["actions"]]
    assert "c2pa.created" in actions
    assert c2pa["digital_source_type"].endswith("compositeWithTrainedAlgorithmicMedia")
    assert c2pa["authors"] == ["Ada Lovelace"]
    assert [i["title"] for i in c2pa["ingredients"]] == ["sketch.jpg"]
    # a throw-away CA is not on the trust list: the signature is valid, the signer untrusted
    assert c2pa["validation_state"] in ("Valid", "Trusted")
    assert "signingCredential.untrusted" in c2pa["validation_status"]
    assert prov.raw["c2pa"][4:8] == b"jumb"  # the JUMBF manifest store, reassembled from APP11
    assert "C2PA:manifest" in prov.cmi()


def test_a_tampered_c2pa_manifest_is_reported_not_fatal() -> None:
    signed = bytearray(c2pa_signed_jpeg(plain_jpeg()))
    # change image data after the manifest: the content hash no longer matches
    signed[-200] ^= 0xFF
    prov = read_provenance(bytes(signed))
    c2pa = prov.sources["c2pa"]
    assert c2pa["present"] is True
    assert c2pa["validation_state"] == "Invalid"
    # break the manifest box itself
    broken = bytearray(c2pa_signed_jpeg(plain_jpeg()))
    at = bytes(broken).find(b"c2pa.signature")
    broken[at : at + 14] = b"x" * 14
    prov = read_provenance(bytes(broken))
    assert prov.sources["c2pa"]["validation_state"] == "Invalid"
    assert "claimSignature.missing" in prov.sources["c2pa"]["validation_status"]


def test_an_unreadable_manifest_store_is_recorded_as_present_and_invalid() -> None:
    jpeg = plain_jpeg()
    box = (40).to_bytes(4, "big") + b"jumb" + b"\x00" * 8 + b"c2pa" + b"\xff" * 20
    payload = b"JP" + b"\x00\x01" + (1).to_bytes(4, "big") + box
    segment = b"\xff\xeb" + (len(payload) + 2).to_bytes(2, "big") + payload
    prov = read_provenance(jpeg[:2] + segment + jpeg[2:])
    c2pa = prov.sources["c2pa"]
    assert c2pa["present"] is True and c2pa["validation_state"] == "Invalid" and c2pa["error"]
    assert any(w.startswith("c2pa:") for w in prov.warnings)
    assert "C2PA:manifest" in prov.cmi()


def test_resaving_drops_the_c2pa_manifest() -> None:
    signed = c2pa_signed_jpeg(plain_jpeg())
    buf = io.BytesIO()
    with Image.open(io.BytesIO(signed)) as img:
        img.save(buf, "JPEG", quality=90)
    prov = read_provenance(buf.getvalue())
    assert "c2pa" not in prov.sources and "C2PA:manifest" not in prov.cmi()
