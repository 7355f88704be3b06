"""The project's set-up files agree with each other."""

import re
import tomllib

import yaml

from vaebook.book import CHAPTERS, PROJECT_ROOT, toc_chapters


def test_environment_yml_mirrors_pyproject():
    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(deps)
    assert "-e ." in pip


def test_toc_lists_every_chapter_notebook():
    notebooks = {p.stem for p in (PROJECT_ROOT / "notebooks").glob("*.py")}
    assert notebooks <= set(CHAPTERS), "add new chapters to vaebook.book.CHAPTERS"
    assert notebooks <= set(toc_chapters()), "add new chapters to _toc.yml"


def test_every_notebook_has_one_parameters_cell():
    for path in (PROJECT_ROOT / "notebooks").glob("*.py"):
        text = path.read_text()
        assert len(re.findall(r'^# %% tags=\["parameters"\]', text, flags=re.M)) == 1, path
        assert re.search(r'^profile = "default"', text, flags=re.M), path
