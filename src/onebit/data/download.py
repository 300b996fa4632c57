"""Download helpers: resumable fetch to a temporary ``.part`` file, sha256 check, atomic rename.

    download(url, dest, sha256="...")   # -> Path; skips the fetch when dest already verifies
    extract(archive, folder)            # zip / tar, refusing members that escape the folder
    verify_tree(folder, CHECKSUMS["modelnet40_repacked"])  # check a local copy

Only ``download`` touches the network (``urllib``; an interrupted download resumes with an
HTTP Range request). Sources move: ``SOURCES`` lists where the public archives were last
published; pass any mirror URL to ``download``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from onebit.data.errors import DataError

# sha256 of the shared/data copy of ModelNet40 (from shared/data/README.md)
CHECKSUMS: dict[str, dict[str, str]] = {
    "modelnet40_repacked": {
        "train.h5": "6018c33201952b23ce7f7a3b14ac44989119bd81acd828c8bc573936a2592b0c",
        "test.h5": "e864acc57dfa377a81f8f298cf4346365580b37a3a64ad7a27fead965516eb7e",
        "shape_names.txt": "7cf9a7b0d1f39eeb861dc43406947d29c1cd429c2f4ff2530ec153d4b8d83609",
        "source_manifest.tsv": "0675d74e30ac46f60f019fc6c1c10928560febb75b97032ad90fb722a960e34e",
    },
}
"""sha256 of known data copies, per file: ``verify_tree(folder, CHECKSUMS[name])``."""

# where the public archives were published (no checksum is known here for them: download
# prints the sha256 it computed so that a user can pin it)
SOURCES: dict[str, str] = {
    "modelnet40_ply_hdf5_2048": "https://shapenet.cs.stanford.edu/media/modelnet40_ply_hdf5_2048.zip",
    "modelnet40_normal_resampled": "https://shapenet.cs.stanford.edu/media/modelnet40_normal_resampled.zip",
    "modelnet40_off": "http://modelnet.cs.princeton.edu/ModelNet40.zip",
    "modelnet10_off": "http://3dvision.princeton.edu/projects/2014/3DShapeNets/ModelNet10.zip",
    "shapenet_part_hdf5": "https://shapenet.cs.stanford.edu/media/shapenet_part_seg_hdf5_data.zip",
    "shapenet_part_normal":
        "https://shapenet.cs.stanford.edu/media/shapenetcore_partanno_segmentation_benchmark_v0_normal.zip",
    "s3dis_hdf5": "https://shapenet.cs.stanford.edu/media/indoor3d_sem_seg_hdf5_data.zip",
}
"""Where the public archives were last published (archive name -> URL); any mirror works."""

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike, chunk: int = _CHUNK) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as e:
        raise DataError(path, f"cannot read for checksum: {e.strerror or e}") from None
    return h.hexdigest()


def verify_file(path: str | os.PathLike, sha256: str) -> None:
    """Raise DataError unless the file exists and its sha256 equals ``sha256`` (hex, any case)."""
    expected = sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    if not Path(path).is_file():
        raise DataError(path, "file not found")
    got = sha256_file(path)
    if got != expected:
        raise DataError(path, f"sha256 mismatch: expected {expected}, got {got} (corrupt or incomplete file)")


def verify_tree(folder: str | os.PathLike, checksums: dict[str, str]) -> list[str]:
    """Verify every ``relative path -> sha256`` under ``folder``; returns the paths checked."""
    folder = Path(folder)
    for rel, digest in checksums.items():
        verify_file(folder / rel, digest)
    return sorted(checksums)


def finalize(part: str | os.PathLike, dest: str | os.PathLike, sha256: str | None = None) -> Path:
    """Verify a finished temporary file and atomically move it to ``dest``.

    On a checksum mismatch the temporary file is deleted (a resumed download could not fix it)
    and DataError is raised; ``dest`` is never left half-written."""
    part, dest = Path(part), Path(dest)
    if sha256 is not None:
        try:
            verify_file(part, sha256)
        except DataError as e:
            part.unlink(missing_ok=True)
            raise DataError(dest, f"download failed verification: {e.problem}") from None
    os.replace(part, dest)  # atomic on one filesystem: dest is either absent or complete
    return dest


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, resume: bool = True,
             timeout: float = 60.0, quiet: bool = False) -> Path:
    """Fetch ``url`` to ``dest`` via ``dest + ".part"``, resuming a previous partial download
    (HTTP Range), then verify ``sha256`` (when given) and rename atomically. A ``dest`` that
    already verifies is not downloaded again."""
    import urllib.error
    import urllib.request

    dest = Path(dest)
    if dest.is_file() and sha256 is not None:
        try:
            verify_file(dest, sha256)
            return dest
        except DataError:
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if (resume and part.is_file()) else 0
    total = None
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status = getattr(r, "status", 200)
            if have and status != 206:  # server ignored the range: start over
                have = 0
            total = r.headers.get("Content-Length")
            with open(part, "ab" if have else "wb") as f:
                shutil.copyfileobj(r, f, _CHUNK)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range not satisfiable: the part file is already complete
            pass
        else:
            raise DataError(dest, f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DataError(dest, f"download of {url} failed (partial data kept in {part.name}; call again "
                              f"to resume): {getattr(e, 'reason', e)}") from None
    out = finalize(part, dest, sha256)
    if not quiet:
        size = f" ({total} bytes)" if total else ""
        print(f"downloaded {url} -> {dest}{size}; sha256 {sha256 or sha256_file(dest)}")
    return out


def extract(archive: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Extract a .zip or .tar(.gz/.bz2/.xz) archive into ``folder``, refusing absolute paths
    and members that would land outside it."""
    archive, folder = Path(archive), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder.resolve()

    def check(name: str) -> None:
        target = (base / name).resolve()
        if os.path.isabs(name) or (target != base and base not in target.parents):
            raise DataError(archive, f"unsafe archive member {name!r} (would be written outside {folder})")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
            if bad is not None:
                raise DataError(archive, f"corrupt zip member {bad!r}")
            for n in z.namelist():
                check(n)
            z.extractall(folder)
        return folder
    try:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                check(m.name)
                if m.issym() or m.islnk():
                    check(os.path.join(os.path.dirname(m.name), m.linkname))
            t.extractall(folder, filter="data")
    except tarfile.TarError as e:
        raise DataError(archive, f"not a readable zip or tar archive: {e}") from None
    return folder
