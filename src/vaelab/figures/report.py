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
from ..runs.rundir import SAMPLES, SUMMARY
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


def ensure_figures(run: Path, model: LatentVariableModel, cfg: Config, test: Split, classes,
                   seed: int) -> dict[str, Path]:
    """Make whichever of the run's standard figures do not exist yet; return them by name."""
    folder = run / "figures"
    wanted = {
        "curves": lambda p: figures.curves_plot([run], p),
        "reconstructions": lambda p: figures.reconstruction_image(model, test, p, seed=seed),
        "latent": lambda p: figures.latent_plot(model, cfg, test, classes, p, seed=seed),
        "interpolation": lambda p: figures.interpolation_plot(
            model, test, p, gif=p.with_suffix(".gif"), seed=seed, classes=classes),
        "traversal": lambda p: figures.traversal_plot(model, test, p, seed=seed,
                                                      classes=classes),
    }
    if model.latent_dim == 2:
        wanted["manifold"] = lambda p: figures.manifold_plot(model, p, classes=classes)
    if model.conditional:
        wanted["style"] = lambda p: figures.style_plot(model, test, classes, p, seed=seed)
    made = {}
    for name, make in wanted.items():
        path = folder / f"{name}.png"
        if not path.exists():
            make(path)
        made[name] = path
    gif = folder / "interpolation.gif"
    if gif.exists():
        made["interpolation_gif"] = gif
    return made


def write_report(run: Path, model: LatentVariableModel, cfg: Config, test: Split, classes,
                 out: Path | None = None, checkpoint: str = "best", seed: int = 0) -> Path:
    """Write `run/report.html` (or `out`), generating any missing figure first."""
    run = Path(run)
    records = figures.read_metrics(run)
    made = ensure_figures(run, model, cfg, test, classes, seed)
    samples = sorted((run / SAMPLES).glob("epoch_*.png"))
    parts = [
        f"<h1>vaelab run <code>{html.escape(run.name)}</code></h1>",
        f'<p class="muted">{html.escape(cfg.model.arch)} VAE'
        f'{", conditional on the class" if model.conditional else ""}, '
        f'latent {cfg.model.latent_dim}, '
        f"{html.escape(cfg.data.dataset)} ({html.escape(cfg.data.mode)}), "
        f"{html.escape(cfg.model.likelihood)} likelihood; {len(records)} epochs; figures from "
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
    if "interpolation_gif" in made:
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
    out = Path(out) if out else run / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
