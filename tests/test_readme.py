"""README code runs: every ```python block is executed against a small trained run."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_snippets_run(trained_run, tmp_path, monkeypatch):
    blocks = python_blocks()
    assert blocks, "README has a Python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        code = block.replace("runs/my-run", str(trained_run))
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
    images = namespace["images"]
    assert images.shape == (16, 1, 28, 28)
    assert 0 <= images.min() and images.max() <= 1


def test_readme_test_command_is_what_ci_runs():
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    command = 'pip install -e ".[dev]" && python -m pytest'
    assert command in README.read_text()
    assert command in ci
