"""The run pages: RUN/index.html (summary, gate, metrics, figures, notebooks) and the comparison page
of `maskdepth report`. Links resolve, numbers are metrics.json's, failed runs get a page too, and a
headless Chromium renders the page to a non-blank picture (skipped without Chromium)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import numpy as np
import pytest
from PIL import Image

from maskdepth.cli import main
from maskdepth.evaluation.catalogue import HEADLINE, format_value
from maskdepth.pages import report as rep
from maskdepth.pages.notebook_html import render_notebook
from maskdepth.pages.runpage import PAGE, write_run_page
from maskdepth.plan.stages import VAL_SPLITS


# -- helpers ---------------------------------------------------------------------------------------
class _Page(HTMLParser):
    """Every href/src, every <script>, and the cells of the table inside the element with a given id."""

    def __init__(self, table_id: str | None = None):
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0
        self.table_id, self._inside, self._depth = table_id, False, 0
        self.rows: list[list[tuple[str | None, str]]] = []
        self._cell: list | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "src"):
            if attrs.get(name) is not None:
                self.links.append(attrs[name])
        if tag == "script":
            self.scripts += 1
        if self.table_id and attrs.get("id") == self.table_id:
            self._inside = True
        if self._inside:
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self._cell = [attrs.get("data-key"), ""]

    def handle_endtag(self, tag):
        if self._inside and tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append((self._cell[0], self._cell[1].strip()))
            self._cell = None
        if self._inside and tag == "table":
            self._inside = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def _parse(page: Path, table_id: str | None = None) -> _Page:
    parser = _Page(table_id)
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _assert_links_resolve(page: Path) -> list[Path]:
    """Every href/src of `page` is relative and names an existing file or folder; returns them."""
    parsed = _parse(page)
    assert parsed.scripts == 0, "a page carries no script"
    targets = []
    for link in parsed.links:
        if link.startswith(("#", "data:")):
            continue
        url = urlparse(link)
        assert not url.scheme and not url.netloc, f"{link}: not a relative link"
        target = (page.parent / unquote(url.path)).resolve()
        assert target.exists(), f"{page.name}: {link} does not resolve"
        targets.append(target)
    return targets


def _png(path: Path, color=(200, 40, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), color).save(path)


def _notebook(path: Path, *, with_error: bool = False) -> None:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print('hello from the cell')", execution_count=1)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello from the cell\n")]
    if with_error:
        code.outputs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="bad model",
                                                   traceback=["\x1b[31mValueError\x1b[0m: bad model"]))
    nb.cells = [nbformat.v4.new_markdown_cell("# A notebook"), code]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def _split_metrics(base: float) -> dict:
    return {"loss": 1.0 - base, "iou": base, "miou": base - 0.05, "dice": base + 0.02, "delta1": base / 2,
            "sa_delta1": base / 1.5, "abs_rel": 1.2 - base, "sa_abs_rel": 0.6, "rmse_over_std": 0.9,
            "obj_delta1": 0.3, "ordering": 0.625, "pixel_acc": 0.97}


def _fake_run(path: Path, *, status: str = "ok", base: float = 0.5, predictions: bool = True) -> Path:
    """A stage run folder as `maskdepth run` leaves it (minus checkpoints and TensorBoard)."""
    path.mkdir(parents=True)
    config = {"data": "playground", "model": "joint", "model_kwargs": {"encoder": "lean", "context": False, "base_channels": 8}, "task": "joint",
              "size": 32, "epochs": 3, "lr": 0.003, "batch_size": 8, "seed": 0}
    (path / "config.json").write_text(json.dumps(config))
    epochs = [{"epoch": e, "lr": 0.001, "time_s": 1.5, "train": {"loss": 2.0 / e},
               **{s: _split_metrics(base * e / 3) for s in VAL_SPLITS}} for e in (1, 2, 3)]
    (path / "history.json").write_text(json.dumps({"epochs": epochs}))
    notebooks = [{"notebook": "00_setup.ipynb", "start": "t0", "status": "ok", "seconds": 1.0}]
    _notebook(path / "notebooks" / "00_setup.ipynb")
    info = {"stage": "playground", "run_dir": str(path), "params": {"stage": "playground", "epochs": 3},
            "start": "2026-01-01T00:00:00+00:00", "prerequisite": {"decision": "no prerequisite"},
            "notebooks": notebooks, "status": status, "seconds": 12.3, "end": "2026-01-01T00:00:12+00:00"}
    if status == "ok":
        metrics = {"model": "joint", "params": 101_562, "task": "joint", "data": "playground", "epochs": 3,
                   "train_time_s": 4.5, "best_metric": "seen.loss", "best_epoch": 3,
                   **{s: _split_metrics(base + 0.1 * k) for k, s in enumerate(VAL_SPLITS)},
                   "n_samples": {s: 8 for s in VAL_SPLITS},
                   "precision": {"autocast": "off", "reason": "timed on this CPU: bf16 0.94x <float32>"}}
        (path / "metrics.json").write_text(json.dumps(metrics))
        info["gate"] = {"passed": True, "checks": [{"metric": "seen.iou", "value": base, "min": 0.4, "ok": True}]}
        _png(path / "figures" / "training_curves.png")
        for s in VAL_SPLITS:
            folder = path / "validation" / s
            _png(folder / "mask_grid.png", (30, 30 + VAL_SPLITS.index(s) * 60, 200))
            _png(folder / "training_curves.png", (10, 10, 10))  # the same picture in every split
            (folder / "metrics.json").write_text(json.dumps({"split": s, "overall": metrics[s]}))
            if predictions:
                gt = np.full((4, 1, 8, 8), 4.0, dtype=np.float32)
                pred = gt * np.array([1.0, 2.0, 0.5, 1.5], dtype=np.float32)[:, None, None, None]
                np.savez(folder / "predictions.npz", index=np.arange(4), depth=pred, gt_depth=gt)
        notebooks.append({"notebook": "02_train.ipynb", "start": "t1", "status": "ok", "seconds": 3.0})
        _notebook(path / "notebooks" / "02_train.ipynb")
        scores = {"n_pixels": 9, "pair_ordering": 0.8, "sa_delta1": 0.6, "sa_abs_rel": 0.2, "delta1": 0.3,
                  "abs_rel": 0.5}
        _png(path / "real" / "motorcycle.png")
        (path / "real" / "real.json").write_text(json.dumps({"checkpoint": "best.pt", "photos": [
            {"name": "motorcycle", "about": "a photo", "size": [50, 74], "network_size": [64, 96],
             "gt_range_m": [2.1, 5.0], "pred_range_m": [1.0, 9.0], "model": scores, "figure": "motorcycle.png",
             "baselines": {"constant": scores, "ramp": scores}, "where": {"near half": scores}}]}))
    else:
        info["error"] = "02_train.ipynb failed in cell [3]: ValueError: bad model"
        notebooks.append({"notebook": "02_train.ipynb", "start": "t1", "status": "failed"})
        _notebook(path / "notebooks" / "02_train.ipynb", with_error=True)
    (path / "run.json").write_text(json.dumps(info))
    return path


# -- the run page ----------------------------------------------------------------------------------
def test_run_page_links_resolve_and_show_every_figure(tmp_path):
    run = _fake_run(tmp_path / "playground" / "r1")
    page = write_run_page(run)
    assert page == run / PAGE
    targets = set(_assert_links_resolve(page))
    for png in run.rglob("*.png"):
        assert png.resolve() in targets, png  # every figure is linked (the duplicates by a link)
    html = page.read_text()
    shown = {src for src in _parse(page).links if src.endswith(".png")}
    assert "figures/training_curves.png" in shown and "validation/ood/mask_grid.png" in shown
    assert html.count('<img src="validation/') == 4  # three grids + one copy of the repeated curves
    assert "the same picture as validation/seen/training_curves.png" in html
    for notebook in ("00_setup", "02_train"):
        rendered = run / "notebooks" / f"{notebook}.html"
        assert rendered.is_file() and "hello from the cell" in rendered.read_text()
        assert f'href="notebooks/{notebook}.html"' in html
    assert "passed" in html and "seen IoU" in html and "min 0.4" in html  # the gate
    assert "base_channels" in html and "playground" in html  # parameters and summary
    assert '<span title="timed on this CPU: bf16 0.94x &lt;float32&gt;">float32</span>' in html  # precision, why
    assert "http://" not in html and "https://" not in html and "<link" not in html


def test_metrics_table_holds_the_numbers_of_metrics_json(tmp_path):
    run = _fake_run(tmp_path / "r", base=0.61234)
    metrics = json.loads((run / "metrics.json").read_text())
    page = write_run_page(run, render_notebooks=False)
    rows = _parse(page, "metrics-headline").rows
    header, body = rows[0], rows[1:]
    assert [key for key, _ in header[1:]] == [k for k in HEADLINE if k in metrics["seen"]]
    assert [r[0][1] for r in body] == list(VAL_SPLITS)
    for row in body:
        split = row[0][1]
        for key, text in row[1:]:
            assert text == format_value(key, metrics[split][key]), (split, key)
    assert body[0][1] == ("iou", "0.612")
    detail = _parse(page, "metrics-detail").rows
    assert ("pixel_acc", "0.970") in detail[1]  # every metric, under "every metric"


def test_a_failed_run_gets_a_page_that_says_why(tmp_path):
    run = _fake_run(tmp_path / "broken", status="failed")
    (run / "notebooks" / "03_validate_seen.ipynb").write_text("{ not json")  # a notebook cut short
    page = write_run_page(run)
    _assert_links_resolve(page)
    html = page.read_text()
    assert "failed" in html and "ValueError: bad model" in html
    assert "No gate decision" in html and "last finished epoch (3)" in html  # metrics from history.json
    assert "03_validate_seen.ipynb" in html and "could not render: " in html
    rendered = (run / "notebooks" / "02_train.html").read_text()
    assert "bad model" in rendered and "\x1b" not in rendered  # the error output, without colour codes


def test_the_pipeline_writes_the_page_when_a_stage_ends_fails_or_is_interrupted(tmp_path, monkeypatch):
    """`run_stage` with its notebooks replaced: the page comes in every outcome."""
    import maskdepth.workflow.pipeline as pipeline

    def fake_execute(nb_in, nb_out, parameters, timeout, cwd=None):
        if nb_in.name == "02_train.ipynb" and fail_with is not None:
            _notebook(nb_out, with_error=True)
            raise fail_with
        _notebook(nb_out)
        return 0.1

    monkeypatch.setattr(pipeline, "execute", fake_execute)
    lines: list[str] = []
    fail_with = None
    result = pipeline.run_stage("playground", {"epochs": 1}, name="fine", root=tmp_path, log=lines.append)
    page = result.run_dir / PAGE
    assert page.is_file() and f"[page] {page}" in lines
    _assert_links_resolve(page)
    fail_with = pipeline.NotebookFailed("02_train.ipynb", 3, "ValueError", "no such model", tmp_path)
    with pytest.raises(pipeline.NotebookFailed):
        pipeline.run_stage("playground", {"epochs": 1}, name="failed", root=tmp_path, log=lines.append)
    html = (tmp_path / "playground" / "failed" / PAGE).read_text()
    assert "no such model" in html and '<span class="badge failed">failed</span>' in html
    fail_with = pipeline.StageInterrupted("SIGTERM")
    with pytest.raises(pipeline.StageInterrupted):
        pipeline.run_stage("playground", {"epochs": 1}, name="cut", root=tmp_path, log=lines.append)
    html = (tmp_path / "playground" / "cut" / PAGE).read_text()
    assert "interrupted" in html and "SIGTERM" in html and "maskdepth run --resume" in html
    assert "not rendered yet" in html  # an interrupted stage does not wait for renderings


def test_a_page_that_cannot_be_written_never_fails_the_run(tmp_path, monkeypatch):
    import maskdepth.pages.runpage as runpage
    import maskdepth.workflow.pipeline as pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runpage, "write_run_page", broken)
    lines: list[str] = []
    assert pipeline.write_page(tmp_path, lines.append) is None
    assert lines == [f"[page] could not write {tmp_path / PAGE}: RuntimeError: disk on fire"]


def test_notebook_renderings_are_reused_until_the_notebook_changes(tmp_path):
    nb = tmp_path / "a.ipynb"
    _notebook(nb)
    html, note = render_notebook(nb)
    assert html == tmp_path / "a.html" and note.startswith("rendered")
    html.write_text("kept")
    assert render_notebook(nb) == (html, "rendered") and html.read_text() == "kept"
    assert "hello from the cell" in render_notebook(nb, force=True)[0].read_text()


def test_cli_report_page(tmp_path, capsys):
    stage = tmp_path / "playground"
    _fake_run(stage / "a")
    _fake_run(stage / "b", status="failed")
    assert main(["report", "--page", str(stage)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {stage / 'a' / PAGE}" in out and f"wrote {stage / 'b' / PAGE}" in out
    assert main(["report", "--page", str(stage / "a"), "--out", str(tmp_path / "x")]) == 2
    assert "--page writes each run's index.html" in capsys.readouterr().err
    assert main(["report", "--page", str(tmp_path / "missing")]) == 2


# -- the comparison page ---------------------------------------------------------------------------
def test_comparison_page_lists_every_run_with_curves_and_depth_scale(tmp_path):
    stage = tmp_path / "outputs" / "playground"
    _fake_run(stage / "good", base=0.7)
    _fake_run(stage / "weak", base=0.3)
    _fake_run(stage / "nopred", base=0.5, predictions=False)
    write_run_page(stage / "good", render_notebooks=False)  # a run with its page is linked to it
    result = rep.report([stage], tmp_path / "cmp")
    page = result.files["html"]
    assert page == tmp_path / "cmp" / PAGE
    for key in ("png", "curves", "depth_scale"):
        assert result.files[key].is_file()
        assert Image.open(result.files[key]).size[0] <= 1600
    targets = set(_assert_links_resolve(page))
    assert (stage / "good" / PAGE).resolve() in targets and (stage / "weak").resolve() in targets
    html = page.read_text()
    for name in ("good", "weak", "nopred"):
        assert f">{name}</a></th>" in html
    for split in VAL_SPLITS:
        assert f"<h3>{split}</h3>" in html
    assert "<b>0.800</b>" in html  # the best unseen IoU (good's) in bold
    assert "×1.25" in html  # the median of the ratios 1, 2, 0.5 and 1.5
    assert "Without saved depth predictions" in html and "<code>nopred</code>" in html
    ratios = rep.scale_ratios(stage / "good")
    assert sorted(ratios["seen"].tolist()) == [0.5, 1.0, 1.5, 2.0]


# -- one real tiny run, and Chromium ---------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """`maskdepth train` (1 epoch at 32 px, a narrow model), then one validation split."""
    from maskdepth.validation.validate import validate

    run = tmp_path_factory.mktemp("train") / "tiny"
    assert main(["train", "--data", "playground", "--epochs", "1", "--size", "32", "--model-kwargs",
                 '{"encoder": "lean", "context": false, "base_channels": 8}', "--no-progress-bar", "--out", str(run)]) == 0
    assert (run / PAGE).is_file()  # written by `maskdepth train`
    validate(run, split="unseen", n_show=4, progress_bar=False)
    write_run_page(run)
    return run


def test_a_real_training_run_gets_its_page(trained_run):
    page = trained_run / PAGE
    _assert_links_resolve(page)
    html = page.read_text()
    assert "training run tiny" in html and "no stage gate" in html
    assert 'src="validation/unseen/depth_grid.png"' in html
    metrics = json.loads((trained_run / "metrics.json").read_text())
    rows = _parse(page, "metrics-headline").rows
    seen = next(r for r in rows if r[0][1] == "seen")
    assert dict(seen[1:])["iou"] == format_value("iou", metrics["seen"]["iou"])


def _screenshot(page: Path, out: Path) -> np.ndarray:
    chromium = shutil.which("chromium")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={out}", "--window-size=1200,1600", page.resolve().as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert out.is_file(), f"chromium wrote no screenshot of {page}"
    return np.asarray(Image.open(out).convert("L"), dtype=np.float64)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no Chromium binary")
def test_chromium_renders_the_pages(trained_run, tmp_path):
    shot = _screenshot(trained_run / PAGE, tmp_path / "run.png")
    assert shot.shape == (1600, 1200) and shot.std() > 10, "a blank page"
    result = rep.report([trained_run])  # the default --out of one run: its own folder
    assert result.files["html"] == trained_run / "report.html"  # its index.html stays the run's page
    assert "training run tiny" in (trained_run / PAGE).read_text()
    _assert_links_resolve(result.files["html"])
    shot = _screenshot(result.files["html"], tmp_path / "cmp.png")
    assert shot.std() > 10


# -- hostile run folders (issue 28) ----------------------------------------------------------------
PAYLOAD = '"><script>alert(1)</script><img src=x onerror=alert(1)>'


class _Active(HTMLParser):
    """Every script element and every on* handler attribute of a page."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.found.append("<script>")
        self.found += [f"<{tag} {name}=...>" for name, _ in attrs if name.lower().startswith("on")]


def _poison(value, numbers: bool):
    """`value` with every string leaf (and with `numbers`, every number, boolean and null too) and
    every key replaced by the payload; a payload key is added to every mapping."""
    if isinstance(value, dict):
        return {**{k if k in ("epochs",) else PAYLOAD + k: _poison(v, numbers) for k, v in value.items()},
                **{k: _poison(v, numbers) for k, v in value.items()}, PAYLOAD: PAYLOAD}
    if isinstance(value, list):
        return [_poison(v, numbers) for v in value]
    return PAYLOAD if numbers or isinstance(value, str) else value


def _active_parts(page: Path) -> list[str]:
    parser = _Active()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.found


@pytest.mark.parametrize("name", ["run.json", "metrics.json", "config.json", "history.json", "real/real.json"])
def test_every_field_of_a_run_folder_is_escaped_on_both_pages(tmp_path, name, capsys):
    """Every string field and key of the four files holds HTML/JS: both pages carry no script
    element and no on* handler. Every field at all (numbers too): a page without either, or
    one line naming the damaged folder and no page."""
    for numbers in (False, True):
        stage = tmp_path / str(numbers) / "playground"
        run = _fake_run(stage / "evil")
        (run / name).write_text(json.dumps(_poison(json.loads((run / name).read_text()), numbers)))
        code = main(["report", "--page", str(run)])
        if code == 2:
            assert numbers and len(capsys.readouterr().err.strip().splitlines()) == 1
            assert not (run / PAGE).exists()
        else:
            assert code == 0 and _active_parts(run / PAGE) == []
        code = main(["report", str(stage), "--out", str(tmp_path / str(numbers) / "cmp")])
        if code == 2:
            assert numbers and len(capsys.readouterr().err.strip().splitlines()) == 1
        else:
            assert code == 0 and _active_parts(tmp_path / str(numbers) / "cmp" / PAGE) == []


def test_the_real_photo_check_is_on_the_page(tmp_path):
    run = _fake_run(tmp_path / "run")
    html = write_run_page(run, render_notebooks=False).read_text()
    assert 'id="real"' in html and "ramp (baseline)" in html and "model, near half" in html
    assert 'src="real/motorcycle.png"' in html


def test_best_epoch_is_escaped(tmp_path):
    run = _fake_run(tmp_path / "evil")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "best_epoch": PAYLOAD}))
    page = write_run_page(run, render_notebooks=False)
    assert _active_parts(page) == [] and "&lt;script&gt;" in page.read_text()
