"""Download helpers: checksum, verification, atomic finalisation, safe extraction (local files only;
nothing here touches the network)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import pytest

from onebit.data.download import CHECKSUMS, extract, finalize, sha256_file, verify_file, verify_tree
from onebit.data.errors import DataError


def test_sha256_file_chunks(tmp_path):
    data = bytes(range(256)) * 5000  # > several chunks of 4 KiB
    p = tmp_path / "a.bin"
    p.write_bytes(data)
    assert sha256_file(p, chunk=4096) == hashlib.sha256(data).hexdigest()
    with pytest.raises(DataError, match=r"missing\.bin: cannot read"):
        sha256_file(tmp_path / "missing.bin")


def test_verify_file(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello\n")
    good = hashlib.sha256(b"hello\n").hexdigest()
    verify_file(p, good.upper())
    with pytest.raises(DataError, match=r"x\.txt: sha256 mismatch: expected 0{64}"):
        verify_file(p, "0" * 64)
    with pytest.raises(ValueError, match="not a sha256"):
        verify_file(p, "abc")
    with pytest.raises(DataError, match="file not found"):
        verify_file(tmp_path / "nope", good)


def test_finalize_atomic_and_rejects_bad_download(tmp_path):
    part, dest = tmp_path / "f.zip.part", tmp_path / "f.zip"
    part.write_bytes(b"complete")
    out = finalize(part, dest, hashlib.sha256(b"complete").hexdigest())
    assert out == dest and dest.read_bytes() == b"complete" and not part.exists()
    part.write_bytes(b"truncat")
    with pytest.raises(DataError, match=r"g\.zip: download failed verification: sha256 mismatch"):
        finalize(part, tmp_path / "g.zip", hashlib.sha256(b"complete").hexdigest())
    assert not part.exists() and not (tmp_path / "g.zip").exists()


def test_verify_tree(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a").write_bytes(b"1")
    sums = {"sub/a": hashlib.sha256(b"1").hexdigest()}
    assert verify_tree(tmp_path, sums) == ["sub/a"]
    (tmp_path / "sub" / "a").write_bytes(b"2")
    with pytest.raises(DataError, match="sha256 mismatch"):
        verify_tree(tmp_path, sums)


def test_extract_zip_tar_and_refuse_escape(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("data/x.txt", "x")
    assert (extract(z, tmp_path / "out") / "data" / "x.txt").read_text() == "x"
    t = tmp_path / "a.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        info = tarfile.TarInfo("y.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"y"))
    assert (extract(t, tmp_path / "out2") / "y.txt").read_text() == "y"
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DataError, match="unsafe archive member '../evil.txt'"):
        extract(bad, tmp_path / "out3")
    assert not (tmp_path / "evil.txt").exists()
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(DataError, match=r"junk\.zip: not a readable zip or tar archive"):
        extract(junk, tmp_path / "out4")


@pytest.mark.realdata
def test_shared_modelnet40_small_file_checksum(shared_data):
    # only the small file: hashing the 128 MB of HDF5 would slow the suite down
    root = shared_data / "modelnet40"
    verify_file(root / "shape_names.txt", CHECKSUMS["modelnet40_repacked"]["shape_names.txt"])
