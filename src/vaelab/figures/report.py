"""One self-contained HTML page per run: every image is embedded as a data URI, no script,
no stylesheet or font from the network, so the file opens anywhere, offline."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from ..config import Config
from ..data.datasets import Split
from ..models.generative import LatentVariableModel
from ..runs.checkpoint import CONFIG, WEIGHTS, resolve
from ..runs.rundir import METRICS, SAMPLES, SUMMARY, checkpoint_dir
from . import names
from . import run_figures as figures

MAX_PROGRESSION = 12  # per-epoch sample grids shown, evenly spaced over the run
MIME = {".png": "image/png", ".gif": "image/gif"}
CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; font-size: 1.25em;
  border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td.key, th.key { text-align: left; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; } img.digits { image-rendering: pixelated; }
img.animation { width: 224px; }
.progression { display: flex; flex-wrap: wrap; gap: 0.8em; }
.progression figure { margin: 0; width: 190px; } .progression img { width: 190px; }
.muted { color: #666; }
"""


def data_uri(path: Path) -> str:
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:{MIME[Path(path).suffix]};base64,{encoded}"


def _image(path: Path, caption: str, digits: bool = True) -> str:
    classes = (["digits"] if digits else []) + (["animation"] if path.suffix == ".gif" else [])
    css = f' class="{" ".join(classes)}"' if classes else ""
    return (f'<figure><img{css} src="{data_uri(path)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(header: list[str], rows: list[list[Any]], decimals: bool = True) -> str:
    """An HTML table; floats get two decimals (nats, seconds) unless `decimals` is False."""
    def cell(value: Any, tag: str, first: bool) -> str:
        text = f"{value:.2f}" if decimals and isinstance(value, float) else str(value)
        css = ' class="key"' if first else ""
        return f"<{tag}{css}>{html.escape(text)}</{tag}>"

    head = "".join(cell(h, "th", i == 0) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell(v, "td", i == 0) for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _config_table(cfg: Config) -> str:
    rows = [[f"{section}.{key}", ", ".join(map(str, value))
             if isinstance(value, (list, tuple)) else value]
            for section, values in cfg.to_dict().items() for key, value in values.items()]
    return _table(["setting", "value"], rows, decimals=False)


def _metrics_table(records: list[dict]) -> str:
    keys = [k for k in ("train_loss", "train_recon", "train_kl", "val_loss", "val_recon",
                        "val_kl", "epoch_seconds", "images_per_second") if k in records[0]]
    return _table(["epoch", *[k.replace("_", " ") for k in keys]],
                  [[r["epoch"], *[r.get(k, "") for k in keys]] for r in records])


def _flat_table(data: dict, title: str) -> str:
    rows = [[key, value] for key, value in data.items() if not isinstance(value, (dict, list))]
    return f"<h2>{html.escape(title)}</h2>" + _table(["quantity", "value"], rows)


def _progression(run: Path) -> str:
    grids = sorted((run / SAMPLES).glob("epoch_*.png"))
    if len(grids) > MAX_PROGRESSION:
        step = (len(grids) - 1) / (MAX_PROGRESSION - 1)
        grids = [grids[round(i * step)] for i in range(MAX_PROGRESSION)]
    items = "".join(_image(p, f"epoch {int(p.stem.split('_')[1])}") for p in grids)
    return f'<div class="progression">{items}</div>'


def checkpoint_time(run: Path, checkpoint: str = "best") -> float:
    """When a checkpoint's weights were written: the newest mtime of its weights and config
    (not of the gmm sampler, which may be fitted later without changing the networks)."""
    folder = resolve(checkpoint_dir(run, checkpoint))
    if folder is None:
        return float("inf")  # no checkpoint: every figure is remade
    return max((folder / name).stat().st_mtime for name in (WEIGHTS, CONFIG))


def ensure_figures(run: Path, model: LatentVariableModel, cfg: Config, test: Split, classes,
                   seed: int, checkpoint: str = "best") -> dict[str, Path]:
    """Make each of the run's standard figures that is missing, or older than what it shows
    (the checkpoint's weights; metrics.jsonl for the curves), under the names the commands
    give them (`names`), so a figure a command made with the same settings is reused;
    return them by name."""
    folder = run / names.FOLDER
    trained = checkpoint_time(run, checkpoint)
    start, end = figures.pick_test_pair(len(test), None, None, seed)
    index = figures.pick_test_index(len(test), None, seed)
    fewer = figures.LATENT_POINTS if figures.LATENT_POINTS < len(test) else None
    interpolation = names.interpolation(start, end, checkpoint=checkpoint)
    # name -> (file names, when what they show was written, maker of the first file)
    wanted = {
        "curves": ((names.curves(),), (run / METRICS).stat().st_mtime,
                   lambda p: figures.curves_plot([run], p)),
        "reconstructions": ((names.reconstructions(seed, checkpoint),), trained,
                            lambda p: figures.reconstruction_image(model, test, p, seed=seed)),
        "latent": ((names.latent("pca", model.latent_dim, fewer, seed, checkpoint),), trained,
                   lambda p: figures.latent_plot(model, cfg, test, classes, p, seed=seed)),
        "interpolation": ((interpolation, Path(interpolation).with_suffix(".gif").name),
                          trained, lambda p: figures.interpolation_plot(
                              model, test, p, start, end, gif=p.with_suffix(".gif"),
                              seed=seed, classes=classes)),
        "traversal": ((names.traversal(index, checkpoint),), trained,
                      lambda p: figures.traversal_plot(model, test, p, index, seed=seed,
                                                       classes=classes)),
    }
    if model.latent_dim == 2:
        wanted["manifold"] = ((names.manifold((0, 1), checkpoint=checkpoint),), trained,
                              lambda p: figures.manifold_plot(model, p, classes=classes))
    if model.conditional:
        wanted["style"] = ((names.style(seed, checkpoint),), trained,
                           lambda p: figures.style_plot(model, test, classes, p, seed=seed))
    made = {}
    for name, (files, source, make) in wanted.items():
        paths = [folder / f for f in files]
        if not all(p.exists() and p.stat().st_mtime >= source for p in paths):
            make(paths[0])
        made[name] = paths[0]
    made["interpolation_gif"] = folder / wanted["interpolation"][0][1]
    return made


def write_report(run: Path, model: LatentVariableModel, cfg: Config, test: Split, classes,
                 out: Path | None = None, checkpoint: str = "best", seed: int = 0) -> Path:
    """Write `run/report.html` (report_last.html for the last checkpoint) or `out`, making
    any figure that is missing or older than the checkpoint first."""
    run = Path(run)
    records = figures.read_metrics(run)
    made = ensure_figures(run, model, cfg, test, classes, seed, checkpoint)
    samples = sorted((run / SAMPLES).glob("epoch_*.png"))
    parts = [
        f"<h1>vaelab run <code>{html.escape(run.name)}</code></h1>",
        f'<p class="muted">{html.escape(cfg.model.arch)} VAE'
        f'{", conditional on the class" if model.conditional else ""}, '
        f'latent {cfg.model.latent_dim}, '
        f"{html.escape(cfg.data.dataset)} ({html.escape(cfg.data.mode)}), "
        f"{html.escape(cfg.model.likelihood_name)} likelihood; {len(records)} epochs; figures from "
        f"the {html.escape(checkpoint)} checkpoint. Losses are nats per image.</p>",
    ]
    for name, title in ((SUMMARY, "Summary"), ("eval.json", "Evaluation")):
        if (run / name).exists():
            parts.append(_flat_table(json.loads((run / name).read_text()), title))
    parts += ["<h2>Training curves</h2>", _image(made["curves"], "loss, reconstruction and KL "
              "per epoch (train solid, validation dashed)", digits=False),
              "<h2>Metrics per epoch</h2>", _metrics_table(records)]
    if samples:
        parts += ["<h2>Samples</h2>", _image(samples[-1], f"samples after epoch "
                  f"{int(samples[-1].stem.split('_')[1])} (the same latent noise every epoch)"),
                  "<h2>Sample progression</h2>", _progression(run)]
    parts += ["<h2>Reconstructions</h2>", _image(made["reconstructions"], "test images (odd "
              "rows) above their reconstructions (even rows)"),
              "<h2>Latent space</h2>", _image(made["latent"], "posterior means of the test set "
              "by class", digits=False)]
    if "manifold" in made:
        parts.append(_image(made["manifold"], "decoded grid of Gaussian quantiles"))
    parts += ["<h2>Interpolation</h2>", _image(made["interpolation"], "path between two test "
              "images' codes")]
    parts.append(_image(made["interpolation_gif"], "the same path, animated there and back"))
    parts += ["<h2>Latent traversal</h2>", _image(made["traversal"], "one latent dimension "
              "varied per row")]
    if "style" in made:
        parts += ["<h2>Style transfer</h2>", _image(made["style"], "each row: a test image "
                  "(first column) encoded with its own label, its code then decoded with "
                  "every class's label; what stays the same along a row (slant, stroke "
                  "width) is what the code holds, the class comes from the label")]
    parts += ["<h2>Configuration</h2>", _config_table(cfg)]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>vaelab report: {html.escape(run.name)}</title><style>{CSS}</style>"
            "</head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    out = Path(out) if out else run / names.report(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
