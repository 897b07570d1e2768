"""Builders of images carrying metadata, for the provenance and attribution tests.

Everything is made here: EXIF with Pillow, XMP packets as text, IPTC IIM in an APP13
segment, generator text chunks as the tools write them, and C2PA manifests signed offline
with a throw-away CA and signer certificate (``c2pa-python``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

from PIL import Image, PngImagePlugin

from monitor.attribution import insert_app13

XMP_CMI = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"'
    ' xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
    ' xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"'
    ' xmpRights:Marked="True" xmpRights:WebStatement="https://ada.example/licence"'
    ' photoshop:Credit="Ada Draws">'
    "<dc:creator><rdf:Seq><rdf:li>Ada Lovelace</rdf:li></rdf:Seq></dc:creator>"
    '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">(c) 2025 Ada Lovelace</rdf:li></rdf:Alt></dc:rights>'
    '<Iptc4xmpCore:CreatorContactInfo rdf:parseType="Resource">'
    "<Iptc4xmpCore:CiEmailWork>ada@example.org</Iptc4xmpCore:CiEmailWork>"
    "</Iptc4xmpCore:CreatorContactInfo>"
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
    '<?xpacket end="w"?>'
)


def cmi_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x013B] = "Ada Lovelace"  # Artist
    exif[0x8298] = "(c) 2025 Ada Lovelace"  # Copyright
    exif[0x0131] = "Krita 5.2"  # Software
    exif[0x010E] = "Harbour at dusk"  # ImageDescription
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2025:01:02 03:04:05"  # DateTimeOriginal
    sub[0x9286] = b"ASCII\x00\x00\x00painted over three evenings"  # UserComment
    return exif


def iim(records: dict[int, str]) -> bytes:
    """IPTC IIM record 2 datasets."""
    out = b"\x1c\x02\x00\x00\x02\x00\x04"  # record version 4
    for dataset, text in records.items():
        value = text.encode("utf-8")
        out += b"\x1c\x02" + bytes([dataset]) + len(value).to_bytes(2, "big") + value
    return out


def jpeg_with_cmi(img: Image.Image, *, quality: int = 92, iptc: bool = True) -> bytes:
    """A JPEG with EXIF (Artist, Copyright, ...), XMP (dc:creator, dc:rights, xmpRights, ...)
    and IPTC IIM (By-line, CopyrightNotice, Credit)."""
    buf = io.BytesIO()
    img.convert("RGB").save(
        buf, "JPEG", quality=quality, exif=cmi_exif().tobytes(), xmp=XMP_CMI.encode("utf-8")
    )
    data = buf.getvalue()
    if iptc:
        data = insert_app13(
            data, {0x0404: iim({80: "Ada Lovelace", 116: "(c) 2025 Ada Lovelace", 110: "Ada Draws"})}
        )
    return data


def png_with_text(img: Image.Image, chunks: dict[str, str], itxt: tuple[str, ...] = ()) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        if key in itxt:
            info.add_itxt(key, value)
        else:
            info.add_text(key, value)
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


A1111_PARAMETERS = (
    "masterpiece, a lighthouse at dusk, <lora:oilpaint:0.7>, <lora:seaside:1.1>\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567890, Size: 832x1216, "
    'Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "oilpaint: a1b2c3, seaside: d4e5f6", '
    "Version: v1.9.4"
)

COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 42,
            "steps": 30,
            "cfg": 7.5,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["10", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 768, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in snow", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark, text", "clip": ["4", 1]}},
    "10": {
        "class_type": "LoraLoader",
        "inputs": {"lora_name": "fur.safetensors", "strength_model": 0.8, "model": ["4", 0]},
    },
}
COMFY_WORKFLOW = {"last_node_id": 10, "nodes": [{"id": 3, "type": "KSampler"}, {"id": 4}, {"id": 6}]}

NOVELAI_TEXT = {
    "Title": "NovelAI generated image",
    "Description": "1girl, reading in a library",
    "Software": "NovelAI",
    "Source": "NovelAI Diffusion V4 4F6C2E3A",
    "Comment": json.dumps(
        {
            "prompt": "1girl, reading in a library",
            "steps": 23,
            "height": 1216,
            "width": 832,
            "scale": 5.0,
            "uncond_scale": 1.0,
            "seed": 987654321,
            "sampler": "k_euler_ancestral",
            "uc": "lowres, bad anatomy",
        }
    ),
}

INVOKEAI_METADATA = {
    "app_version": "4.2.4",
    "generation_mode": "txt2img",
    "positive_prompt": "a castle on a hill",
    "negative_prompt": "fog",
    "width": 1024,
    "height": 768,
    "seed": 77,
    "steps": 40,
    "cfg_scale": 6.0,
    "scheduler": "dpmpp_2m",
    "model": {"name": "juggernautXL", "hash": "blake3:abcd"},
    "loras": [{"model": {"name": "castles"}, "weight": 0.6}],
}


# ---------------------------------------------------------------------------- C2PA


def _c2pa_certs() -> tuple[bytes, bytes]:
    """(PEM chain signer+CA, PEM private key) made now: C2PA refuses self-signed signers."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ada Draws Studio"),
            ]
        )

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Test C2PA CA"))
        .issuer_name(name("Test C2PA CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("Ada Signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, pem_key


def c2pa_signed_jpeg(jpeg: bytes, *, ingredient: bytes | None = None) -> bytes:
    """``jpeg`` with a signed C2PA manifest: a ``c2pa.created`` action from a trained model,
    a CreativeWork author, and optionally a parent ingredient."""
    import c2pa

    chain, key = _c2pa_certs()
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(alg=b"es256", sign_cert=chain, private_key=key, ta_url=None)
    )
    manifest: dict[str, Any] = {
        "claim_generator_info": [{"name": "monitor-tests", "version": "1.0"}],
        "title": "Harbour at dusk",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/"
                            "compositeWithTrainedAlgorithmicMedia",
                            "softwareAgent": {"name": "Krita", "version": "5.2"},
                        }
                    ]
                },
            },
            {
                "label": "stds.schema-org.CreativeWork",
                "data": {
                    "@context": "https://schema.org",
                    "@type": "CreativeWork",
                    "author": [{"@type": "Person", "name": "Ada Lovelace"}],
                },
            },
        ],
    }
    builder = c2pa.Builder(json.dumps(manifest))
    if ingredient is not None:
        builder.add_ingredient(
            json.dumps({"title": "sketch.jpg", "relationship": "parentOf"}),
            "image/jpeg",
            io.BytesIO(ingredient),
        )
    out = io.BytesIO()
    builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), out)
    return out.getvalue()
