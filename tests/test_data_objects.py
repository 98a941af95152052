"""The packed object store: traced once, read back byte-identically, used by the Dataset."""

import shutil

import numpy as np

from maskdepth.cli import main
from maskdepth.datasets.dataset import build_dataset
from maskdepth.world.objects import ObjectStore, build_store


def test_store_composes_byte_identical_samples_and_the_dataset_uses_it(capsys):
    traced = {split: build_dataset("playground", split, size=32) for split in ("train", "ood")}
    expected = {split: [ds.compose(i) for i in range(len(ds))] for split, ds in traced.items()}
    ds = traced["train"]
    assert ds.composer.store is None
    report = build_store(ds.source_set, "playground", ds.manifest, workers=2)
    try:
        assert report["built"] and report["objects"] == 24  # 48 rows: each placement and its flip share one
        assert not build_store(ds.source_set, "playground", ds.manifest)["built"]  # complete: kept
        for split, samples in expected.items():
            stored = build_dataset("playground", split, size=32)
            assert isinstance(stored.composer.store, ObjectStore)
            for i, want in enumerate(samples):
                got = stored.compose(i)
                for key in ("image", "bg", "mask", "depth"):
                    assert got[key].tobytes() == want[key].tobytes(), (split, i, key)
            assert not stored.composer._objects  # nothing was traced again
        import pickle

        clone = pickle.loads(pickle.dumps(stored.composer.store))  # as a spawned DataLoader worker gets it
        assert isinstance(clone.depth, np.memmap)  # reopened, not copied
        for row in range(len(clone.keys)):
            (a, shadow_a), (b, shadow_b) = clone.get(row), stored.composer.store.get(row)
            assert (a is None) == (b is None) and (a is None or a["depth"].tobytes() == b["depth"].tobytes())
            assert (shadow_a is None) == (shadow_b is None)
        assert main(["data", "build", "--data", "playground", "--size", "32", "--objects"]) == 0
        assert "objects: 24 placements found" in capsys.readouterr().out
    finally:  # other tests trace playground objects themselves
        shutil.rmtree(report["folder"])


def test_an_incomplete_store_is_ignored(tmp_path):
    ds = build_dataset("playground", "seen", size=32)
    from maskdepth.world.objects import store_folder

    folder = store_folder(ds.source_set, "playground", "0" * 64)
    folder.mkdir(parents=True)
    (folder / "keys.npy").write_bytes(b"half written")
    assert ObjectStore.open(ds.source_set, "playground", "0" * 64) is None
    assert np.isfinite(build_dataset("playground", "seen", size=32).compose(0)["depth"]).all()


def test_store_builds_in_a_pool_when_the_background_views_are_not_cached(tmp_path, monkeypatch):
    """The pool's workers compose on background views; none may be missing when they start (a
    worker cannot start a pool of its own to render them: `maskdepth data build --objects` on a
    fresh cache, and bench figure 5, once failed with 'daemonic processes are not allowed to have
    children')."""
    import maskdepth.world.objects as objects

    monkeypatch.setenv("MASKDEPTH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(objects, "CHUNK", 12)  # two chunks, each with more than 8 views to render
    ds = build_dataset("playground", "train", size=32)
    for view in ds.source_set.folder.glob("b*_p*.npz"):
        view.unlink()  # as on a fresh cache for the splits a dataset has not been built for yet
    report = build_store(ds.source_set, "playground", ds.manifest, workers=2)
    assert report["built"] and report["objects"] == 24
    stored = build_dataset("playground", "train", size=32)
    assert isinstance(stored.composer.store, ObjectStore)
