"""The project's set-up files agree with each other."""

import re
import tomllib

import yaml

from vaebook import book
from vaebook.book import CHAPTERS, PROJECT_ROOT, toc_chapters


def test_environment_yml_mirrors_pyproject():
    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(deps)
    assert "-e ." in pip


def test_toc_is_the_one_list_of_chapters():
    notebooks = {p.stem for p in (PROJECT_ROOT / "notebooks").glob("*.py")}
    assert set(CHAPTERS) == notebooks, "list every notebook in _toc.yml under book/generated/"
    assert CHAPTERS == toc_chapters()
    toc_text = (PROJECT_ROOT / "_toc.yml").read_text()
    assert [toc_text.index(f"book/generated/{c}\n") for c in CHAPTERS] == \
        sorted(toc_text.index(f"book/generated/{c}\n") for c in CHAPTERS)


def test_titles_come_from_each_notebooks_first_heading():
    for name in CHAPTERS:
        first_heading = re.search(r"^# # (.+)$", (PROJECT_ROOT / "notebooks" / f"{name}.py").read_text(), re.M)
        assert book.TITLES[name] == first_heading.group(1).strip()
    assert book.TITLES["latent_size"] == "How big should the latent space be?"


def test_every_notebook_has_one_parameters_cell():
    for path in (PROJECT_ROOT / "notebooks").glob("*.py"):
        text = path.read_text()
        assert len(re.findall(r'^# %% tags=\["parameters"\]', text, flags=re.M)) == 1, path
        assert re.search(r'^profile = "default"', text, flags=re.M), path


def test_no_control_characters_in_sources():
    for path in list((PROJECT_ROOT / "src").rglob("*.py")) + list((PROJECT_ROOT / "notebooks").glob("*.py")):
        bad = [c for c in path.read_text() if ord(c) < 32 and c not in "\n\t"]
        assert not bad, f"{path} contains control characters {sorted(set(map(repr, bad)))}"
