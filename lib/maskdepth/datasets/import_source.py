"""The files of a dataset to import, a folder or a zip: fg_bg/, mask/, depth/ (and optionally bg/)
with one file per sample, paired by file stem (sub-folders allowed: `fg_bg/bg1/x.jpg` pairs with
`mask/bg1/x.png`); in a zip they may sit under one top-level folder.

Zip members are read as streams, never unpacked whole into memory: a member that unpacks to more
than `MAX_MEMBER_BYTES` is refused, and a corrupt one (bad CRC, damaged data or header) is a
problem file naming it, like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.core.imageio import IMAGE_SUFFIXES
from maskdepth.datasets.datadir import bg_id_from_name

FIELDS = ("fg_bg", "mask", "depth")
# Largest unpacked size of one zip member. Image files are compressed already: a member far
# larger than the 64 Mpx pixel limit needs is a decompression bomb, not a photo.
MAX_MEMBER_BYTES = 256 * 2**20


class SourceTree:
    """The files of a dataset folder or zip, by posix path relative to its root (the folder holding fg_bg/)."""

    def __init__(self, src):
        self.src = Path(src)
        self.zip = None
        if not self.src.exists():
            raise BadInputError(self.src, "no such file or folder")
        if self.src.is_file():
            try:
                self.zip = zipfile.ZipFile(self.src)
            except (zipfile.BadZipFile, OSError) as exc:
                raise BadInputError(self.src, f"neither a folder nor a readable zip file ({exc})") from exc
            names = [n for n in self.zip.namelist() if not n.endswith("/")]
        else:
            names = [Path(root, n).relative_to(self.src).as_posix()
                     for root, _, files in os.walk(self.src) for n in files]
        names = [n for n in names if not _hidden(n)]
        self.root = _find_root(self.src, names)
        cut = len(self.root)
        self.files = sorted(n[cut:] for n in names if n.startswith(self.root))

    def label(self, rel: str) -> str:
        """How a file is named in messages: the path, or archive.zip:path."""
        if self.zip is not None:
            return f"{self.src}:{self.root}{rel}"
        return str(self.src / self.root / rel)

    def open(self, rel: str):
        """A path, or a stream over the zip member (capped, errors as BadInputError naming it)."""
        if self.zip is None:
            return self.src / self.root / rel
        label = self.label(rel)
        info = self.zip.getinfo(self.root + rel)
        if info.file_size > MAX_MEMBER_BYTES:
            raise BadInputError(label, f"unpacks to {info.file_size / 2**20:.0f} MiB, over the "
                                       f"{MAX_MEMBER_BYTES / 2**20:.0f} MiB limit per file (a zip bomb?)")
        with _zip_errors(label):
            return _MemberStream(self.zip.open(info), label)

    def fingerprint(self) -> str:
        """sha256 of the file list with sizes: a changed source does not resume an old import."""
        h = hashlib.sha256()
        for rel in self.files:
            if self.zip is not None:
                size = self.zip.getinfo(self.root + rel).file_size
            else:
                size = (self.src / self.root / rel).stat().st_size
            h.update(f"{rel}\0{size}\n".encode())
        return h.hexdigest()


@contextlib.contextmanager
def _zip_errors(label: str):
    """A damaged zip member (bad CRC or header, undecodable or cut data, unsupported compression
    or encryption) becomes a BadInputError naming it."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as exc:
        raise BadInputError(label, f"corrupt zip member ({type(exc).__name__}: {exc})") from exc


class _MemberStream(io.RawIOBase):
    """A zip member as a seekable binary stream; read errors become BadInputError naming it.
    zipfile never yields more than the member's declared size, which `open` has capped."""

    def __init__(self, member, label: str):
        self._member, self._label = member, label

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with _zip_errors(self._label):
            return self._member.read(size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with _zip_errors(self._label):
            return self._member.seek(offset, whence)

    def tell(self) -> int:
        return self._member.tell()

    def close(self) -> None:
        self._member.close()
        super().close()


def _hidden(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _find_root(src: Path, names: list[str]) -> str:
    """The folder holding fg_bg/: the shallowest one; two at the same depth are refused (which
    one to import would otherwise be arbitrary)."""
    roots = sorted({n[: n.index("fg_bg/")] for n in names if "fg_bg/" in n and
                    (n.startswith("fg_bg/") or n[: n.index("fg_bg/")].endswith("/"))}, key=lambda r: (r.count("/"), r))
    if not roots:
        raise MaskdepthError(f"{src}: no fg_bg/ folder found; expected fg_bg/, mask/ and depth/ "
                             "(and optionally bg/) with files paired by name")
    tied = [r for r in roots if r.count("/") == roots[0].count("/")]
    if len(tied) > 1:
        raise MaskdepthError(f"{src}: holds {len(tied)} datasets ({', '.join(r or '.' for r in tied[:4])}): "
                             "import one at a time (unpack it, or give its folder as SRC)")
    return roots[0]


@dataclass
class Candidate:
    name: str  # stem relative to the field folder, e.g. "bg1/x"
    files: dict[str, str]  # field -> relative path
    bg: str | None = None  # relative path of its background, if known


@dataclass
class Scan:
    candidates: list[Candidate]
    problems: list[BadInputError] = field(default_factory=list)
    backgrounds: dict[str, str] = field(default_factory=dict)  # bg id -> relative path
    unusable: int = 0  # stems left out by pairing (unpaired or duplicate)


def scan(tree: SourceTree) -> Scan:
    """Pair the files by stem; unpaired and duplicate stems (x.jpg beside x.png) are problems.

    A sample's background is the `bg/` file with its seed-style id (`bg12_fg3_7` -> `bg/bg12.jpg`)."""
    by_field: dict[str, dict[str, list[str]]] = {f: {} for f in (*FIELDS, "bg")}
    for rel in tree.files:
        top, _, rest = rel.partition("/")
        if top in by_field and rest and PurePosixPath(rest).suffix.lower() in IMAGE_SUFFIXES:
            by_field[top].setdefault(str(PurePosixPath(rest).with_suffix("")), []).append(rel)
    problems: list[BadInputError] = []
    for fld in (*FIELDS, "bg"):
        for stem, rels in by_field[fld].items():
            if len(rels) > 1:
                problems.extend(BadInputError(tree.label(r), f"{len(rels)} files share the name {fld}/{stem}.*; "
                                                            "keep one") for r in rels)
    if not by_field["fg_bg"]:
        raise MaskdepthError(f"{tree.label('fg_bg/')}: no image files")
    stems = sorted(set().union(*(by_field[f].keys() for f in FIELDS)))
    candidates = []
    unusable = 0
    for stem in stems:
        have = {f: by_field[f][stem] for f in FIELDS if stem in by_field[f]}
        if len(have) < len(FIELDS):
            missing = ", ".join(f"{f}/{stem}.*" for f in FIELDS if f not in have)
            for rels in have.values():
                problems.append(BadInputError(tree.label(rels[0]), f"unpaired: no {missing}"))
            unusable += 1
            continue
        if any(len(r) > 1 for r in have.values()):
            unusable += 1
            continue
        candidates.append(Candidate(stem, {f: r[0] for f, r in have.items()}))
    backgrounds = {}
    for stem, rels in by_field["bg"].items():
        bg_id = bg_id_from_name(PurePosixPath(stem).name)
        if bg_id is not None and len(rels) == 1:
            backgrounds[bg_id] = rels[0]
    for c in candidates:
        bg_id = bg_id_from_name(PurePosixPath(c.name).name)
        c.bg = backgrounds.get(bg_id) if bg_id is not None else None
    return Scan(candidates, problems, backgrounds, unusable)
