"""Where commands write (vaelab/cli/outputs.py), one rule for every command that writes a file:
--out may name a file, or a folder (one that exists, or a path ending in /) for the default
name; an unsupported extension or a place that cannot be written is one line and exit
status 2, before the model is loaded, leaving nothing behind. Default names say what a figure
shows (vaelab/figures/names.py), so figures of other settings never overwrite each other."""

import importlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from helpers import assert_one_line_error
from vaelab.cli import main
from vaelab.runs import rundir

export_module = importlib.import_module("vaelab.runs.export")  # the module, not the function

FOLDER = None  # the output is a folder of files, not one file

# command -> (argv before the output, given the runs; the output's flag, "" for a positional
# OUT; its default name in a folder, or FOLDER)
COMMANDS = {
    "sample": (lambda r: ["sample", r.plain, "--grid", "2"], "--out",
               "samples_gmm_t0.8.png"),
    "sample-by-class": (lambda r: ["sample", r.cond, "--grid-by-class", "--grid", "1"],
                        "--out", "samples_by_class_gmm_t0.8.png"),
    "sample-files": (lambda r: ["sample", r.plain, "--count", "3", "--format", "files"],
                     "--out", FOLDER),
    "reconstruct": (lambda r: ["reconstruct", r.plain, "--rows", "1", "--cols", "2"], "--out",
                    "reconstructions.png"),
    "style": (lambda r: ["style", r.cond, "--count", "2"], "--out", "style.png"),
    "latent": (lambda r: ["latent", r.plain, "--points", "100"], "--out",
               "latent_pca_n100.png"),
    "manifold": (lambda r: ["manifold", r.plain, "--n", "3"], "--out", "manifold_z0-1.png"),
    "interpolate": (lambda r: ["interpolate", r.plain, "--from", "1", "--to", "2", "--steps",
                               "3"], "--out", "interpolation_test1-2.png"),
    "traverse": (lambda r: ["traverse", r.plain, "--index", "5", "--steps", "3", "--top",
                            "2"], "--out", "traversal_test5.png"),
    "curves": (lambda r: ["curves", r.plain], "--out", "curves.png"),
    "report": (lambda r: ["report", r.plain], "--out", "report.html"),
    "compare": (lambda r: ["compare", r.plain], "--plot", "rate_distortion.png"),
    "export": (lambda r: ["export", r.plain], "", FOLDER),
    "score": (lambda r: ["score", r.plain, r.image], "--json", "scores.json"),
}
FILE_COMMANDS = [name for name, spec in COMMANDS.items() if spec[2] is not FOLDER]


@pytest.fixture(scope="module")
def runs(trained_run, conditional_run, tmp_path_factory):
    """Copies of the tiny runs (the report writes into RUN_DIR/figures), the plain one with
    an eval.json for compare --plot."""
    root = tmp_path_factory.mktemp("outputs")
    plain, cond = root / "plain", root / "cond"
    shutil.copytree(trained_run, plain)
    shutil.copytree(conditional_run, cond)
    (plain / "eval.json").write_text(json.dumps({"data_mode": "binarized", "test_kl": 10.0,
                                                 "test_recon": 150.0}))
    image = root / "digit.png"
    Image.new("L", (28, 28)).save(image)
    return SimpleNamespace(plain=str(plain), cond=str(cond), image=str(image))


def argv(command: str, runs, out: str) -> list[str]:
    before, flag, _ = COMMANDS[command]
    return [*before(runs), *([flag] if flag else []), out]


def suffix(command: str) -> str:
    """An extension the command writes (any name does for a folder)."""
    name = COMMANDS[command][2]
    return ".png" if name is FOLDER else Path(name).suffix


@pytest.fixture
def no_loading(monkeypatch):
    """Make loading a model fail loudly: a refused output must be refused before that."""
    def refuse(*args, **kwargs):
        raise AssertionError("the output was checked after the model was loaded")

    monkeypatch.setattr(rundir, "load_run", refuse)
    monkeypatch.setattr(export_module, "load_run", refuse)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def refused(capsys, tmp_path, arguments, *fragments) -> str:
    before = files_under(tmp_path)
    err = assert_one_line_error(capsys, arguments, *fragments)
    assert files_under(tmp_path) == before, "a refused command leaves nothing behind"
    return err


@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_unsupported_extension(command, runs, tmp_path, capsys, no_loading):
    out = str(tmp_path / "notes.py")
    refused(capsys, tmp_path, argv(command, runs, out), f"vaelab {command.split('-')[0]}: "
            f"error: ", f"{out}: unsupported extension .py")


@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_a_path_without_extension_that_is_no_folder(command, runs, tmp_path, capsys,
                                                     no_loading):
    out = str(tmp_path / "newdir")
    refused(capsys, tmp_path, argv(command, runs, out), f"{out}: no file extension",
            "a path ending in /")


@pytest.mark.parametrize("command", COMMANDS)
def test_parent_is_a_file(command, runs, tmp_path, capsys, no_loading):
    existing = tmp_path / "existing_file"
    existing.write_text("notes")
    out = str(existing / f"x{suffix(command)}")
    refused(capsys, tmp_path, argv(command, runs, out),
            f"{out}: cannot write there: {existing} is a file, not a folder")


@pytest.mark.parametrize("command", [c for c in COMMANDS if COMMANDS[c][2] is FOLDER])
def test_folder_output_that_is_a_file(command, runs, tmp_path, capsys, no_loading):
    existing = tmp_path / "existing_file"
    existing.write_text("notes")
    refused(capsys, tmp_path, argv(command, runs, str(existing)),
            f"{existing}: a file of that name exists")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_place_that_cannot_be_written(command, runs, capsys, no_loading):
    out = f"/proc/nope{suffix(command)}"
    assert_one_line_error(capsys, argv(command, runs, out), f"{out}: cannot write in /proc")


@pytest.mark.parametrize("where", ["existing", "new/with/slash/"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_gets_the_default_name(command, where, runs, tmp_path):
    folder = tmp_path / where
    if where == "existing":
        folder.mkdir()
    out = str(folder) + ("/" if where.endswith("/") else "")
    assert main(argv(command, runs, out)) == 0
    name = COMMANDS[command][2]
    if name is FOLDER:  # the folder itself holds the files
        assert {"sample_0.png", "encoder"} & set(files_under(folder))
    else:
        assert files_under(folder) >= {name}, files_under(folder)


def test_a_missing_parent_is_created(runs, tmp_path):
    out = tmp_path / "a" / "b" / "r.png"
    assert main(["reconstruct", runs.plain, "--rows", "1", "--cols", "2", "--out",
                 str(out)]) == 0
    assert Image.open(out).format == "PNG"


class TestDefaultNames:
    """Figures of other settings get other names in RUN_DIR/figures."""

    def figures(self, run) -> set[str]:
        return files_under(Path(run) / "figures")

    def test_samples_name_sampler_temperature_seed_and_checkpoint(self, runs, capsys):
        for extra in ([], ["--sampler", "prior"], ["--temperature", "0.5", "--seed", "3"],
                      ["--checkpoint", "last"]):
            assert main(["sample", runs.plain, "--grid", "2", *extra]) == 0
        assert self.figures(runs.plain) >= {
            "samples_gmm_t0.8.png", "samples_prior_t1.png", "samples_gmm_t0.5_seed3.png",
            "samples_gmm_t0.8_last.png"}
        assert main(["sample", runs.cond, "--digit", "7", "--grid", "2"]) == 0
        assert "samples_class7_gmm_t0.8.png" in self.figures(runs.cond)

    def test_latent_names_its_projection(self, runs):
        for method in ("pca", "tsne"):
            assert main(["latent", runs.plain, "--method", method, "--points", "150"]) == 0
        assert self.figures(runs.plain) >= {"latent_pca_n150.png", "latent_tsne_n150.png"}

    def test_interpolation_names_its_ends_and_keeps_png_and_gif_together(self, runs, capsys):
        figures = Path(runs.plain) / "figures"
        common = ["--steps", "3", "--mode", "linear"]
        assert main(["interpolate", runs.plain, "--from-class", "3", "--to-class", "4",
                     "--gif", *common]) == 0
        assert main(["interpolate", runs.plain, "--from-class", "3", "--to-class", "8",
                     *common]) == 0
        assert main(["interpolate", runs.plain, "--from", "12", "--to", "345", "--gif",
                     "--steps", "3"]) == 0
        assert self.figures(runs.plain) >= {
            "interpolation_class3-4_linear.png", "interpolation_class3-4_linear.gif",
            "interpolation_class3-8_linear.png", "interpolation_test12-345.png",
            "interpolation_test12-345.gif"}
        assert not (figures / "interpolation_class3-8_linear.gif").exists()
        capsys.readouterr()
        # the same path again without --gif: its older GIF goes, it would show another path
        assert main(["interpolate", runs.plain, "--from", "12", "--to", "345", "--steps",
                     "5"]) == 0
        assert not (figures / "interpolation_test12-345.gif").exists()
        assert "removed the older" in capsys.readouterr().out
