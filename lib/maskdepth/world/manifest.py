"""Manifests: which background, foreground, placement and flip make each sample of a stage.

The full stage keeps the capstone's layout (100 x 100 pairs x PLACEMENTS_PER_PAIR placements x 2
flips in train; `seen`, `unseen` and `ood` validation splits); smaller stages are deterministic
subsets of the same triples. A placement is a pure function of (seed, bg, fg, placement index) and
is stored with 6 exact decimals, so a triple looks the same in every stage and the object's pose is
reproducible from the manifest alone. A manifest's identity is the sha256 of its CSV text,
recorded in data_manifests/spec.json. Splits and columns: docs/world.md, "Manifests"."""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.core.fileio import read_json, write_json, write_text
from maskdepth.plan.stages import SPLITS, Stage, get_stage

# The placement geometry (foot points, size jitter) lives in `placement`; re-exported for callers.
from maskdepth.world.placement import QUANT, place
from maskdepth.world.sources import SourceSpec

PLACEMENTS_PER_PAIR = 20
COLUMNS = ("id", "split", "bg", "fg", "placement", "u", "v", "scale", "flip")
SPEC_FORMAT = "maskdepth-data-spec/1"


@dataclass
class Manifest:
    stage: str
    seed: int
    columns: dict[str, np.ndarray]  # COLUMNS; split as int codes into SPLITS; u, v, scale as int 1e-6

    def __len__(self) -> int:
        return len(self.columns["id"])

    def rows(self, split: str) -> np.ndarray:
        """Row indices of one split, in manifest order."""
        if split not in SPLITS:
            raise MaskdepthError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.columns["split"] == SPLITS.index(split))

    def count(self, split: str) -> int:
        return int((self.columns["split"] == SPLITS.index(split)).sum())

    def values(self, name: str, rows=None) -> np.ndarray:
        """A column as numbers; u, v and scale as float64 (the exact decimal values)."""
        col = self.columns[name] if rows is None else self.columns[name][rows]
        return col / QUANT if name in ("u", "v", "scale") else col

    def to_csv(self) -> str:
        c = self.columns
        names = [SPLITS[k] for k in c["split"].tolist()]
        lines = [",".join(COLUMNS)]
        lines.extend(
            f"{i},{s},{b},{f},{p},{_dec(u)},{_dec(v)},{_dec(sc)},{fl}"
            for i, s, b, f, p, u, v, sc, fl in zip(
                c["id"].tolist(), names, c["bg"].tolist(), c["fg"].tolist(), c["placement"].tolist(),
                c["u"].tolist(), c["v"].tolist(), c["scale"].tolist(), c["flip"].tolist(),
            )
        )
        return "\n".join(lines) + "\n"

    def sha256(self) -> str:
        if not hasattr(self, "_sha"):
            self._sha = hashlib.sha256(self.to_csv().encode()).hexdigest()
        return self._sha


def _dec(q: int) -> str:
    return f"{q // QUANT}.{q % QUANT:06d}"


# --- stages -------------------------------------------------------------------------------


def _choose(rng: np.random.Generator, population: int, k: int, what: str) -> np.ndarray:
    if k > population:
        raise MaskdepthError(f"{what}: {k} samples requested but only {population} exist")
    if k == population:
        return np.arange(population, dtype=np.int64)
    return np.sort(rng.choice(population, size=k, replace=False)).astype(np.int64)


def _half(stage: Stage, split: str) -> int:
    n = stage.count(split)
    if n % 2:
        raise MaskdepthError(f"stage {stage.name!r}: {split} count {n} must be even (every placement comes with its flip)")
    return n // 2


def build_manifest(stage: str | Stage, seed: int = 0, spec: SourceSpec | None = None) -> Manifest:
    """Generate a stage's manifest deterministically (vectorised; the 400k one in about a second)."""
    stage = get_stage(stage) if isinstance(stage, str) else stage
    spec = spec or SourceSpec(seed=seed)
    P = PLACEMENTS_PER_PAIR
    rng = np.random.default_rng([int(seed), 10, zlib.crc32(stage.name.encode())])
    # train: triples of training ids
    t = _choose(rng, spec.n_bg * spec.n_fg * P, _half(stage, "train"), f"stage {stage.name} train")
    train = (t // (spec.n_fg * P), (t // P) % spec.n_fg, t % P)
    # seen: new placements of the (bg, fg) pairs that the train split uses
    pairs = np.unique(train[0] * spec.n_fg + train[1])
    k = _choose(rng, len(pairs) * P, _half(stage, "seen"), f"stage {stage.name} seen")
    pair = pairs[k // P]
    seen = (pair // spec.n_fg, pair % spec.n_fg, P + k % P)
    # unseen: triples of held-out ids
    n_u = spec.n_fg_unseen
    t = _choose(rng, spec.n_bg_unseen * n_u * P, _half(stage, "unseen"), f"stage {stage.name} unseen")
    unseen = (spec.n_bg + t // (n_u * P), spec.n_fg + (t // P) % n_u, t % P)
    # ood: triples of the out-of-distribution ids (held-out families, see SourceSpec)
    n_o = spec.n_fg_ood
    t = _choose(rng, spec.n_bg_ood * n_o * P, _half(stage, "ood"), f"stage {stage.name} ood")
    ood = (spec.first_ood_bg + t // (n_o * P), spec.first_ood_fg + (t // P) % n_o, t % P)

    parts = [train, seen, unseen, ood]
    bg = np.concatenate([np.repeat(p[0], 2) for p in parts]).astype(np.int64)
    fg = np.concatenate([np.repeat(p[1], 2) for p in parts]).astype(np.int64)
    placement = np.concatenate([np.repeat(p[2], 2) for p in parts]).astype(np.int64)
    split = np.concatenate([np.full(2 * len(p[0]), code, dtype=np.int8) for code, p in enumerate(parts)])
    flip = np.tile(np.array([0, 1], dtype=np.int8), len(bg) // 2)
    u, v, scale = place(spec, bg, fg, placement)
    columns = {
        "id": np.arange(len(bg), dtype=np.int64),
        "split": split,
        "bg": bg,
        "fg": fg,
        "placement": placement,
        "u": u,
        "v": v,
        "scale": scale,
        "flip": flip,
    }
    return Manifest(stage.name, int(seed), columns)


# --- committed spec and CSVs ---------------------------------------------------------------


def manifests_dir() -> Path:
    """`$MASKDEPTH_MANIFESTS`, else `data_manifests/` of the checkout, else the copy an installed
    package carries (`maskdepth.core.resources`)."""
    from maskdepth.core.resources import resource_dir

    env = os.environ.get("MASKDEPTH_MANIFESTS")
    return Path(env) if env else resource_dir("data_manifests")


def read_data_spec(folder: Path | None = None) -> dict | None:
    """The committed spec (seed, source spec, per-stage counts and sha256), or None when absent
    (e.g. an installed package without the checkout: manifests are then generated unverified)."""
    path = (folder or manifests_dir()) / "spec.json"
    if not path.is_file():
        return None
    try:
        spec = read_json(path)
    except ValueError as exc:
        raise BadInputError(path, f"not valid JSON ({exc})") from exc
    if spec.get("format") != SPEC_FORMAT:
        raise BadInputError(path, f"format {SPEC_FORMAT!r} expected")
    return spec


_MEMO: dict[tuple, Manifest] = {}


def load_manifest(stage: str, seed: int = 0, verify: bool = True) -> Manifest:
    """A stage's manifest, verified against the recorded sha256 when the spec covers this seed."""
    get_stage(stage)
    key = (stage, int(seed))
    if key in _MEMO:
        return _MEMO[key]
    manifest = build_manifest(stage, seed)
    if verify:
        verify_manifest(manifest)
    _MEMO[key] = manifest
    return manifest


def verify_manifest(manifest: Manifest, folder: Path | None = None) -> bool:
    """True if checked against the committed spec, False if the spec does not cover it.

    Raises MaskdepthError when the generated manifest differs from the recorded one: the
    generator (or its inputs) changed, and results would not be comparable across runs.
    """
    data_spec = read_data_spec(folder)
    if data_spec is None or int(data_spec["seed"]) != manifest.seed or manifest.stage not in data_spec["stages"]:
        return False
    if data_spec["sources"] != SourceSpec(seed=manifest.seed).to_dict():
        raise MaskdepthError(f"{manifests_dir() / 'spec.json'}: its source spec differs from this version's; "
                             "regenerate it with `maskdepth data manifest --update-spec`")
    expected = data_spec["stages"][manifest.stage]["sha256"]
    if manifest.sha256() != expected:
        raise MaskdepthError(
            f"manifest of stage {manifest.stage!r} (seed {manifest.seed}) has sha256 {manifest.sha256()}, "
            f"but data_manifests/spec.json records {expected}: the generator changed; "
            "regenerate with `maskdepth data manifest --update-spec` if that is intended"
        )
    return True


def read_manifest_csv(path, stage: str = "", seed: int = 0) -> Manifest:
    """Parse a manifest CSV (as written by `to_csv`); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "no such file")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != ",".join(COLUMNS):
        raise BadInputError(path, f"header must be {','.join(COLUMNS)}")
    cols: dict[str, list] = {name: [] for name in COLUMNS}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        try:
            if len(fields) != len(COLUMNS):
                raise ValueError(f"{len(fields)} fields")
            for name, value in zip(COLUMNS, fields):
                if name == "split":
                    cols[name].append(SPLITS.index(value))
                elif name in ("u", "v", "scale"):
                    whole, frac = value.split(".")
                    if len(frac) != 6:
                        raise ValueError(f"{name} needs 6 decimals")
                    cols[name].append(int(whole) * QUANT + int(frac))
                else:
                    cols[name].append(int(value))
        except ValueError as exc:
            raise BadInputError(path, f"line {number}: {exc}") from exc
    dtypes = {"split": np.int8, "flip": np.int8}
    columns = {name: np.array(values, dtype=dtypes.get(name, np.int64)) for name, values in cols.items()}
    return Manifest(stage or path.stem, seed, columns)


COMMITTED_CSV_STAGES = ("playground", "1k")
REFERENCE_SIZE = 64


def reference_match(size: int, seed: int) -> bool | None:
    """Whether this machine renders the recorded reference bytes (None: no reference applies)."""
    from maskdepth.world.composition import reference_digest

    data_spec = read_data_spec()
    ref = (data_spec or {}).get("reference_sources")
    if not ref or int(data_spec["seed"]) != seed or ref["size"] != size:
        return None
    return reference_digest(SourceSpec(seed=seed), size) == ref["sha256"]


def write_data_spec(folder: Path | None = None, seed: int = 0) -> dict:
    """Regenerate `data_manifests/`: spec.json for every stage and the small stages' CSVs."""
    from maskdepth.plan.stages import STAGES

    folder = folder or manifests_dir()
    source_spec = SourceSpec(seed=seed)
    stages = {}
    for name, stage in STAGES.items():
        manifest = build_manifest(stage, seed, source_spec)
        csv = f"{name}.csv" if name in COMMITTED_CSV_STAGES else None
        if csv:
            write_text(folder / csv, manifest.to_csv())
        stages[name] = {
            **{split: manifest.count(split) for split in SPLITS},
            "rows": len(manifest),
            "sha256": manifest.sha256(),
            "csv": csv,
        }
    from maskdepth.world.composition import reference_digest

    reference = reference_digest(source_spec, REFERENCE_SIZE)
    data_spec = {
        "format": SPEC_FORMAT,
        "seed": seed,
        "placements_per_pair": PLACEMENTS_PER_PAIR,
        "sources": source_spec.to_dict(),
        # sha256 of reference renders at REFERENCE_SIZE (`sources.reference_digest`): the same
        # seed must give these bytes on every machine (`maskdepth data build` reports whether they match).
        "reference_sources": {"size": REFERENCE_SIZE, "sha256": reference},
        "stages": stages,
    }
    write_json(folder / "spec.json", data_spec)
    _MEMO.clear()
    return data_spec
