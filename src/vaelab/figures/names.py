"""Default file names of a run's figures, in RUN_DIR/figures/. A name says what its figure
shows, so figures of other settings never overwrite each other, and `vaelab report` can
reuse a figure a command made with the same settings:

    samples[_class<N>]_<sampler>_t<temperature>[_seed<S>][_last].png   (a folder with
                                                    --format files), samples_by_class_...
    reconstructions[_seed<S>][_last].png           style[_seed<S>][_last].png
    latent_<pca|tsne|umap>[_n<points>][_seed<S>][_last].png   (latent[...] for codes of
                                                    at most 2 dimensions, drawn as they are)
    manifold_z<X>-<Y>[_class<N>][_last].png
    interpolation_test<I>-<J>[_linear][_last].png   interpolation_class<A>-<B>[...].png
                                                    (and the .gif of the same name)
    traversal_test<I>[_last].png
    curves.png, curves_vs_<RUN>[_<RUN>...].png       report[_last].html (in RUN_DIR)

`_seed<S>` appears when the seed is not 0, `_last` with --checkpoint last. Flags that only
lay a figure out (--grid, --scale, --rows, --steps, ...) are not part of its name."""

from __future__ import annotations

from collections.abc import Sequence

FOLDER = "figures"  # in the run directory


def _join(stem: str, *parts: str, seed: int = 0, checkpoint: str = "best",
          suffix: str = ".png") -> str:
    words = [stem, *(p for p in parts if p)]
    if seed:
        words.append(f"seed{seed}")
    if checkpoint == "last":
        words.append("last")
    return "_".join(words) + suffix


def samples(sampler: str, temperature: float, label: int | None = None, seed: int = 0,
            checkpoint: str = "best", by_class: bool = False, folder: bool = False) -> str:
    """A grid of samples, or (`folder`) the folder of one PNG per sample."""
    stem = "samples_by_class" if by_class else "samples"
    which = "" if label is None else f"class{label}"
    return _join(stem, which, sampler, f"t{temperature:g}", seed=seed, checkpoint=checkpoint,
                 suffix="" if folder else ".png")


def reconstructions(seed: int = 0, checkpoint: str = "best") -> str:
    return _join("reconstructions", seed=seed, checkpoint=checkpoint)


def style(seed: int = 0, checkpoint: str = "best") -> str:
    return _join("style", seed=seed, checkpoint=checkpoint)


def latent(method: str, latent_dim: int, points: int | None = None, seed: int = 0,
           checkpoint: str = "best") -> str:
    """`points`: the number plotted when it is fewer than the whole test set, else None."""
    return _join("latent", method if latent_dim > 2 else "",
                 f"n{points}" if points else "", seed=seed, checkpoint=checkpoint)


def manifold(dims: Sequence[int], label: int | None = None, checkpoint: str = "best") -> str:
    return _join("manifold", f"z{dims[0]}-{dims[1]}", "" if label is None else f"class{label}",
                 checkpoint=checkpoint)


def interpolation(start: int | None = None, end: int | None = None,
                  from_class: int | None = None, to_class: int | None = None,
                  mode: str = "slerp", checkpoint: str = "best", suffix: str = ".png") -> str:
    """Between two test images (their indices) or two class means (their numbers)."""
    ends = (f"class{from_class}-{to_class}" if from_class is not None
            else f"test{start}-{end}")
    return _join("interpolation", ends, "" if mode == "slerp" else mode,
                 checkpoint=checkpoint, suffix=suffix)


def traversal(index: int, checkpoint: str = "best") -> str:
    return _join("traversal", f"test{index}", checkpoint=checkpoint)


def curves(others: Sequence[str] = ()) -> str:
    """The curves of one run, or of it overlaid with `others` (their folder names)."""
    return _join("curves", *(["vs", *others] if others else []))


def report(checkpoint: str = "best") -> str:
    return _join("report", checkpoint=checkpoint, suffix=".html")
