"""Importing an existing fg_bg/mask/depth dataset from a folder or a zip: labels, splits, bad files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdepth.cli import main
from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.datasets.datadir import assign_splits, read_dataset_json, read_samples_csv
from maskdepth.datasets.dataset import build_dataset
from maskdepth.datasets.importer import ImportProblems, import_dataset

SIZE = 24
N_BG, N_FG, K = 4, 2, 2  # 16 samples named like the capstone's: bg{B}_fg{F}_{k}


def make_tree(root: Path, depth_bits: int = 16, with_bg: bool = True) -> dict:
    """A capstone-style dataset with known pixels; returns the arrays written, by name."""
    rng = np.random.default_rng(0)
    truth = {}
    bgs = {b: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for b in range(N_BG)}
    for name in ("fg_bg", "mask", "depth") + (("bg",) if with_bg else ()):
        (root / name).mkdir(parents=True, exist_ok=True)
    if with_bg:
        for b, arr in bgs.items():
            Image.fromarray(arr).save(root / "bg" / f"bg{b}.png")
    for b in range(N_BG):
        for f in range(N_FG):
            for k in range(K):
                name = f"bg{b}_fg{f}_{k}"
                image = bgs[b].copy()
                mask = np.zeros((SIZE, SIZE), np.uint8)
                y, x = rng.integers(0, SIZE - 8, 2)
                mask[y : y + 8, x : x + 6] = 255
                image[mask > 0] = rng.integers(0, 256, 3, dtype=np.uint8)
                if depth_bits == 16:
                    depth = rng.integers(64, 20000, (SIZE, SIZE)).astype(np.uint16)
                else:
                    depth = rng.integers(0, 256, (SIZE, SIZE)).astype(np.uint8)
                Image.fromarray(image).save(root / "fg_bg" / f"{name}.png")  # lossless, to compare exactly
                Image.fromarray(mask).save(root / "mask" / f"{name}.png")
                Image.fromarray(depth).save(root / "depth" / f"{name}.png")
                truth[name] = {"image": image, "mask": mask > 0, "depth": depth, "bg": bgs[b]}
    return truth


def test_folder_import_keeps_labels_and_holds_out_backgrounds(tmp_path):
    truth = make_tree(tmp_path / "src")
    r = import_dataset(tmp_path / "src", tmp_path / "out", size=SIZE)
    assert r["samples"] == 16 and r["skipped"] == 0 and r["depth_units"] == "metres"
    meta = read_dataset_json(tmp_path / "out")
    assert sum(meta["counts"].values()) == 16 and meta["source"]["kind"] == "imported"
    rows = read_samples_csv(tmp_path / "out")
    unseen_bgs = {r["name"].split("_")[0] for r in rows if r["split"] == "unseen"}
    train_bgs = {r["name"].split("_")[0] for r in rows if r["split"] == "train"}
    assert unseen_bgs and not unseen_bgs & train_bgs  # whole backgrounds held out
    assert meta["counts"]["seen"] >= 1
    for split in ("train", "seen", "unseen"):
        ds = build_dataset(str(tmp_path / "out"), split, size=SIZE)
        for row in (r for r in rows if r["split"] == split):
            s, t = ds[int(row["index"])], truth[row["name"]]
            assert np.array_equal(s["mask"][0].numpy(), t["mask"])
            assert np.array_equal(s["image"].numpy(), t["image"].transpose(2, 0, 1) / np.float32(255))
            assert np.array_equal(s["bg"].numpy(), t["bg"].transpose(2, 0, 1) / np.float32(255))
            assert np.allclose(s["depth"][0].numpy(), t["depth"] / 256.0)


def test_import_resizes_and_maps_8bit_relative_depth(tmp_path):
    truth = make_tree(tmp_path / "src", depth_bits=8, with_bg=False)
    import_dataset(tmp_path / "src", tmp_path / "rel", size=16)
    meta = read_dataset_json(tmp_path / "rel")
    assert meta["depth"]["units"] == "relative" and meta["depth"]["source_bits"] == 8
    ds = build_dataset(str(tmp_path / "rel"), "train", size=16)
    row = next(r for r in read_samples_csv(tmp_path / "rel") if r["split"] == "train" and r["index"] == "0")
    s, t = ds[0], truth[row["name"]]
    assert s["image"].shape == (3, 16, 16) and s["depth"].shape == (1, 16, 16)
    assert np.array_equal(s["bg"].numpy(), s["image"].numpy())  # no bg/ folder: bg is the image itself
    nearest = t["depth"][(np.arange(16) * 1.5 + 0.75).astype(int)][:, (np.arange(16) * 1.5 + 0.75).astype(int)]
    expected = DEPTH_MIN * (DEPTH_MAX / DEPTH_MIN) ** (nearest / 255.0)
    assert np.abs(s["depth"][0].numpy() - expected).max() <= 0.5 / 256 + 1e-5
    import_dataset(tmp_path / "src", tmp_path / "metric", size=SIZE, depth_scale=0.1)
    assert read_dataset_json(tmp_path / "metric")["depth"]["units"] == "metres"
    row = read_samples_csv(tmp_path / "metric")[0]
    got = build_dataset(str(tmp_path / "metric"), row["split"], size=SIZE)[int(row["index"])]["depth"][0].numpy()
    assert np.allclose(got, np.clip(truth[row["name"]]["depth"] * 0.1, DEPTH_MIN, DEPTH_MAX), atol=0.5 / 256)


def make_bad_zip(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    make_tree(src)
    (src / "mask" / "bg0_fg0_0.png").unlink()  # unpaired fg_bg + depth
    data = (src / "fg_bg" / "bg1_fg0_0.png").read_bytes()
    (src / "fg_bg" / "bg1_fg0_0.png").write_bytes(data[: len(data) // 2])  # truncated
    Image.new("L", (SIZE + 4, SIZE)).save(src / "mask" / "bg2_fg0_0.png")  # wrong size
    Image.new("L", (SIZE, SIZE)).save(src / "fg_bg" / "bg3_fg0_0.png")  # greyscale where RGB is needed
    Image.new("P", (SIZE, SIZE)).save(src / "mask" / "bg3_fg1_0.png")  # palette mask
    zpath = tmp_path / "data.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, "dataset/" + p.relative_to(src).as_posix())  # under a top-level folder
        zf.writestr("__MACOSX/dataset/fg_bg/._bg0_fg0_0.png", b"junk")
    return zpath


BAD = {
    "fg_bg/bg0_fg0_0.png": "unpaired: no mask/bg0_fg0_0",
    "fg_bg/bg1_fg0_0.png": "truncated",
    "mask/bg2_fg0_0.png": "wrong size 28x24",
    "fg_bg/bg3_fg0_0.png": "greyscale",
    "mask/bg3_fg1_0.png": "palette",
}


def test_zip_with_bad_files_fails_naming_each(tmp_path):
    zpath = make_bad_zip(tmp_path)
    with pytest.raises(ImportProblems) as info:
        import_dataset(zpath, tmp_path / "out", size=SIZE)
    message = str(info.value)
    for rel, reason in BAD.items():
        assert f"data.zip:dataset/{rel}: " in message and reason in message.split(f"dataset/{rel}: ")[1], rel
    assert "--skip-bad to import the 11 good samples" in message
    assert not (tmp_path / "out" / "dataset.json").exists()
    with pytest.raises(Exception, match="not a complete maskdepth dataset"):
        build_dataset(str(tmp_path / "out"), "train", size=SIZE)


def test_skip_bad_counts_and_lists_what_it_skipped(tmp_path, capsys):
    zpath = make_bad_zip(tmp_path)
    assert main(["data", "import", str(zpath), "--out", str(tmp_path / "out"), "--size", str(SIZE), "--skip-bad"]) == 0
    printed = capsys.readouterr().out
    assert "imported 11 samples" in printed and "skipped 5 sample(s)" in printed
    listed = (tmp_path / "out" / "problems.txt").read_text()
    assert all(rel in listed for rel in BAD)
    meta = read_dataset_json(tmp_path / "out")
    assert sum(meta["counts"].values()) == 11 and meta["source"]["skipped_samples"] == 5
    assert len(build_dataset(str(tmp_path / "out"), "train", size=SIZE)) == meta["counts"]["train"]
    # the CLI reports other bad input in one line naming the file
    assert main(["data", "import", str(tmp_path / "missing.zip"), "--out", str(tmp_path / "o2")]) == 2
    assert "missing.zip: no such file or folder" in capsys.readouterr().err


def test_split_assignment_is_deterministic_and_never_empty():
    names = [f"img{i}" for i in range(40)]
    splits, method = assign_splits(names)
    assert splits == assign_splits(list(names))[0]
    assert splits.count("seen") == 2 and splits.count("unseen") == 2 and "random" in method["unseen"]
    grouped, method = assign_splits(names, [f"b{i % 8}" for i in range(40)])
    held = {f"b{i % 8}" for i, s in enumerate(grouped) if s == "unseen"}
    assert len(held) == 1 and grouped.count("unseen") == 5 and method["unseen"] == "held-out backgrounds"
    assert assign_splits(["a", "b", "c"])[0].count("train") == 1


def test_bad_source_is_named(tmp_path):
    (tmp_path / "notzip.zip").write_bytes(b"hello")
    with pytest.raises(BadInputError, match="notzip.zip: neither a folder nor a readable zip"):
        import_dataset(tmp_path / "notzip.zip", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no fg_bg/ folder found"):
        import_dataset(tmp_path / "empty", tmp_path / "out")


# --- issue 16: mask value ranges, corrupt and oversized zip members ------------------------------


def _rewrite_masks(root: Path, convert) -> None:
    for path in sorted((root / "mask").glob("*.png")):
        Image.fromarray(convert(np.asarray(Image.open(path)))).save(path)


def test_masks_stored_as_0_1_or_soft_values_do_not_import_empty(tmp_path, capsys):
    truth = make_tree(tmp_path / "binary")
    _rewrite_masks(tmp_path / "binary", lambda m: (m > 0).astype(np.uint8))  # 0/1 masks
    assert main(["data", "import", str(tmp_path / "binary"), "--out", str(tmp_path / "b"), "--size", str(SIZE)]) == 0
    assert "masks: 0/1 masks: read as binary, foreground = 1" in capsys.readouterr().out
    assert read_dataset_json(tmp_path / "b")["masks"]["values"] == "0/1"
    for row in read_samples_csv(tmp_path / "b"):
        mask = build_dataset(str(tmp_path / "b"), row["split"], size=SIZE)[int(row["index"])]["mask"][0].numpy()
        assert np.array_equal(mask > 0.5, truth[row["name"]]["mask"]), row["name"]

    make_tree(tmp_path / "soft")
    # a soft edge: a column of 60 next to each object, between 0 and the maximum 255
    _rewrite_masks(tmp_path / "soft", lambda m: np.where(m > 0, 255, np.where(np.roll(m, 1, axis=1) > 0, 60, 0))
                   .astype(np.uint8))
    assert main(["data", "import", str(tmp_path / "soft"), "--out", str(tmp_path / "s"), "--size", str(SIZE)]) == 0
    err = capsys.readouterr().err
    assert "warning: masks: soft masks" in err and "thresholded at half their range, foreground > 127.5" in err
    row = read_samples_csv(tmp_path / "s")[0]
    mask = build_dataset(str(tmp_path / "s"), row["split"], size=SIZE)[int(row["index"])]["mask"][0].numpy()
    assert np.array_equal(mask > 0.5, truth[row["name"]]["mask"])


def test_empty_and_mixed_mask_ranges_are_refused(tmp_path):
    make_tree(tmp_path / "empty")
    _rewrite_masks(tmp_path / "empty", np.zeros_like)
    with pytest.raises(Exception, match="every mask is empty"):
        import_dataset(tmp_path / "empty", tmp_path / "e", size=SIZE)
    assert not (tmp_path / "e" / "dataset.json").exists()

    make_tree(tmp_path / "mixed")
    one = tmp_path / "mixed" / "mask" / "bg1_fg1_1.png"
    Image.fromarray((np.asarray(Image.open(one)) > 0).astype(np.uint8)).save(one)
    with pytest.raises(ImportProblems, match=r"bg1_fg1_1.png: mask values 0/1 among masks using 0..255"):
        import_dataset(tmp_path / "mixed", tmp_path / "m", size=SIZE)


def _zip_tree(src: Path, zpath: Path, compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(zpath, "w", compression) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    return zpath


def test_a_corrupt_zip_member_is_a_problem_file_not_a_traceback(tmp_path, capsys):
    make_tree(tmp_path / "src")
    zpath = _zip_tree(tmp_path / "src", tmp_path / "data.zip")
    with zipfile.ZipFile(zpath) as zf:
        info = zf.getinfo("mask/bg2_fg1_0.png")
    data = bytearray(zpath.read_bytes())
    data[info.header_offset : info.header_offset + 4] = b"XXXX"  # the member's local header is damaged
    zpath.write_bytes(bytes(data))
    with pytest.raises(ImportProblems, match=r"data.zip:mask/bg2_fg1_0.png: corrupt zip member \(BadZipFile"):
        import_dataset(zpath, tmp_path / "out", size=SIZE)
    assert main(["data", "import", str(zpath), "--out", str(tmp_path / "out"), "--size", str(SIZE), "--skip-bad"]) == 0
    assert "imported 15 samples" in capsys.readouterr().out


def test_zip_members_are_streamed_and_capped(tmp_path, monkeypatch):
    import maskdepth.datasets.import_source as import_source

    src = tmp_path / "src"
    make_tree(src)
    (src / "fg_bg" / "bg0_fg0_0.png").write_bytes(b"\0" * (64 * 2**20))  # 64 MiB that is no image
    zpath = _zip_tree(src, tmp_path / "bomb.zip")
    assert zpath.stat().st_size < 2**20
    unpacked = {"bytes": 0}
    real_read = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        data = real_read(self, n)
        unpacked["bytes"] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    with pytest.raises(ImportProblems, match=r"bomb.zip:fg_bg/bg0_fg0_0.png: not an image"):
        import_dataset(zpath, tmp_path / "out", size=SIZE)
    assert unpacked["bytes"] < 2**20  # the header was enough: the 64 MiB were never unpacked
    monkeypatch.setattr(import_source, "MAX_MEMBER_BYTES", 32 * 2**20)
    with pytest.raises(ImportProblems, match=r"bg0_fg0_0.png: unpacks to 64 MiB, over the 32 MiB limit"):
        import_dataset(zpath, tmp_path / "out", size=SIZE)


# --- issue 28: deterministic dataset folder, zero depth, finite scales, out inside src ---------


def test_a_zip_with_two_dataset_folders_is_refused_naming_both(tmp_path):
    make_tree(tmp_path / "two" / "a")
    make_tree(tmp_path / "two" / "b")
    zpath = _zip_tree(tmp_path / "two", tmp_path / "two.zip")
    with pytest.raises(MaskdepthError, match=r"holds 2 datasets \(a/, b/\)"):
        import_dataset(zpath, tmp_path / "out", size=SIZE)


def test_all_zero_depth_warns_and_bad_scales_are_refused(tmp_path, capsys):
    make_tree(tmp_path / "src")
    for path in (tmp_path / "src" / "depth").glob("*.png"):
        Image.fromarray(np.zeros((SIZE, SIZE), np.uint16)).save(path)
    assert main(["data", "import", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--size", str(SIZE)]) == 0
    assert "warning: depth: 16 of 16 depth maps are zero everywhere" in capsys.readouterr().err
    for scale in ("inf", "nan", "-1"):
        assert main(["data", "import", str(tmp_path / "src"), "--out", str(tmp_path / f"o{scale}"),
                     "--depth-scale", scale]) == 2
        assert "--depth-scale" in capsys.readouterr().err


def test_an_import_into_its_own_source_is_refused(tmp_path, capsys):
    make_tree(tmp_path / "src")
    assert main(["data", "import", str(tmp_path / "src"), "--out", str(tmp_path / "src" / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lies inside" in err
    assert not (tmp_path / "src" / "out").exists()
