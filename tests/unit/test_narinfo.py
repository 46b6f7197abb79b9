"""The `.narinfo` text Circus's binary cache serves (circus.nix.narinfo), and the path
info it is made from (circus.nix.pathinfo): field order, store prefixes stripped from
References and Deriver, Sig lines, and the fingerprint Nix signs. narinfo.py only
renders; it has no parser."""

from __future__ import annotations

import base64
import hashlib
import subprocess

import pytest

from circus.nix import narinfo
from circus.nix.pathinfo import PathInfo, hash_part, nix32, sha256_nix32

HELLO = "/nix/store/ab9zv2y5gm8hr6g318p0s6kaclwj4slr-hello-2.10"
GLIBC = "/nix/store/9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31"
DRV = "/nix/store/y4zlpvlq4dhhpihbxj0jdm9zb0jbk3w8-hello-2.10.drv"
NAR_HASH = "sha256:0a4lvq8z95k9ccl1clmhxmpb8whsgmq2clkpjdmkaxmvaaarabq0"


def _info(**changes: object) -> PathInfo:
    fields: dict[str, object] = {"path": HELLO, "nar_hash": NAR_HASH, "nar_size": 206_936,
                                 "references": (GLIBC, HELLO), "deriver": DRV}
    fields.update(changes)
    return PathInfo(**fields)  # type: ignore[arg-type]


def test_an_uncompressed_narinfo_has_every_field_in_nixs_order() -> None:
    text = narinfo.render(_info(), "none", ["cache-1:c2lnbmF0dXJl", "cache-2:b3RoZXI="])
    assert text == (
        f"StorePath: {HELLO}\n"
        "URL: nar/ab9zv2y5gm8hr6g318p0s6kaclwj4slr.nar\n"
        "Compression: none\n"
        # The file is the NAR itself: its hash and size are the NAR's.
        f"FileHash: {NAR_HASH}\n"
        "FileSize: 206936\n"
        f"NarHash: {NAR_HASH}\n"
        "NarSize: 206936\n"
        "References: 9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31 "
        "ab9zv2y5gm8hr6g318p0s6kaclwj4slr-hello-2.10\n"
        "Deriver: y4zlpvlq4dhhpihbxj0jdm9zb0jbk3w8-hello-2.10.drv\n"
        "Sig: cache-1:c2lnbmF0dXJl\n"
        "Sig: cache-2:b3RoZXI=\n")


@pytest.mark.parametrize(("compression", "extension"), [
    ("zstd", ".nar.zst"), ("xz", ".nar.xz"), ("bzip2", ".nar.bz2"), ("br", ".nar.br")])
def test_a_compressed_narinfo_names_its_format_and_omits_the_file_hash(
        compression: str, extension: str) -> None:
    # Compressed while it streams, the file's hash and size are not known in advance.
    lines = narinfo.render(_info(), compression, []).splitlines()
    assert lines[1] == f"URL: nar/ab9zv2y5gm8hr6g318p0s6kaclwj4slr{extension}"
    assert lines[2] == f"Compression: {compression}"
    assert not any(line.startswith(("FileHash:", "FileSize:")) for line in lines)
    assert narinfo.EXTENSIONS[extension] == compression


def test_no_deriver_no_references_no_signatures() -> None:
    lines = narinfo.render(_info(references=(), deriver=None), "xz", []).splitlines()
    # Nix writes "References: " even when empty (and reads an absent line the same).
    assert lines[-1] == "References: "
    assert not any(line.startswith(("Deriver:", "Sig:")) for line in lines)


def test_the_nar_url_is_named_by_the_store_paths_hash() -> None:
    assert narinfo.nar_url(_info(), "zstd") == "nar/ab9zv2y5gm8hr6g318p0s6kaclwj4slr.nar.zst"
    with pytest.raises(KeyError):
        narinfo.nar_url(_info(), "gzip")  # not a format the cache offers


def test_cache_info() -> None:
    assert narinfo.cache_info() == "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"
    assert narinfo.cache_info(40).endswith("Priority: 40\n")


def test_the_fingerprint_is_what_nix_signs() -> None:
    # ValidPathInfo::fingerprint: full reference paths, sorted, comma-separated.
    info = _info(references=(HELLO, GLIBC))
    assert info.fingerprint() == f"1;{HELLO};{NAR_HASH};206936;{GLIBC},{HELLO}"
    assert _info(references=()).fingerprint() == f"1;{HELLO};{NAR_HASH};206936;"


def test_path_info_from_nix_json() -> None:
    digest = hashlib.sha256(b"nar").digest()
    entry = {"path": HELLO, "narHash": "sha256:" + digest.hex(), "narSize": "12",
             "references": [HELLO, GLIBC], "deriver": ""}
    info = PathInfo.from_json(entry)
    assert info == PathInfo(HELLO, "sha256:" + nix32(digest), 12, (GLIBC, HELLO), None)
    assert info.hash_part == hash_part(HELLO) == "ab9zv2y5gm8hr6g318p0s6kaclwj4slr"


@pytest.mark.parametrize("data", [b"", b"a", b"nix", bytes(range(256))])
def test_nix32_is_nixs_base32(data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    expected = subprocess.run(["nix-hash", "--type", "sha256", "--to-base32", digest],
                              check=True, capture_output=True, text=True,
                              timeout=60).stdout.strip()
    assert nix32(bytes.fromhex(digest)) == expected
    assert len(expected) == 52


def test_every_spelling_of_a_sha256_becomes_nix32() -> None:
    digest = hashlib.sha256(b"x").digest()
    wanted = "sha256:" + nix32(digest)
    # SRI is base64 of the raw digest.
    assert sha256_nix32("sha256-" + base64.b64encode(digest).decode()) == wanted
    assert sha256_nix32("sha256:" + digest.hex()) == wanted
    assert sha256_nix32(wanted) == wanted


@pytest.mark.parametrize(("text", "message"), [
    ("md5:d41d8cd98f00b204e9800998ecf8427e", "not a sha256 hash: 'md5:"),
    ("sha256:abc", "cannot read hash 'sha256:abc'"),
])
def test_a_hash_that_is_not_a_sha256_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sha256_nix32(text)
