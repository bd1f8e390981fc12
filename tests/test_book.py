"""The offline book: built from the executed notebooks, read in headless Chromium with the network refused.

The regression run (tests/test_notebooks.py) keeps its executed procedural notebooks in ``runs/executed/``; these
tests run after it (tests/conftest.py orders the ``book`` tests last) and build from those, executing nothing again.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from exdd_lab.errors import ExddError
from exdd_lab.lab.book import EXECUTED_DIR, HIDDEN_TAG, build_book, find_executed, write_sources
from exdd_lab.lab.notebooks import list_notebooks

pytestmark = pytest.mark.book
NAMES = [nb.name for nb in list_notebooks()]


def test_the_pages_leave_out_the_maintainer_cells_and_list_every_lesson(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    for nb in list_notebooks():  # the masters stand in for executed notebooks: the same cells, no outputs
        shutil.copyfile(nb, executed / nb.name)
    pages = write_sources(executed, tmp_path / "src")
    assert pages == [Path(n).stem for n in NAMES]
    index = (tmp_path / "src" / "index.md").read_text()
    assert all(page in index for page in pages) and "answers" in index
    for name in NAMES:
        cells = nbformat.read(str(tmp_path / "src" / name), as_version=4).cells
        master = nbformat.read(str(executed / name), as_version=4).cells
        assert not [c for c in cells if HIDDEN_TAG in c.metadata.get("tags", [])]
        assert len(cells) == len(master) - sum(HIDDEN_TAG in c.metadata.get("tags", []) for c in master) > 0
    assert (tmp_path / "src" / "conf.py").read_text().count("nb_execution_mode = \"off\"") == 1


def test_a_folder_without_the_executed_lessons_is_refused_with_the_fix(tmp_path):
    (tmp_path / NAMES[0]).write_text("{}")
    with pytest.raises(ExddError, match="run `make run` first") as error:
        find_executed(tmp_path)
    assert NAMES[1] in str(error.value)


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    if not all((EXECUTED_DIR / name).is_file() for name in NAMES):
        pytest.skip(f"no executed notebooks in {EXECUTED_DIR}: the notebook regression run writes them "
                    "(pytest tests/test_notebooks.py -k procedural), or build from a `make run` folder")
    index = build_book(EXECUTED_DIR, tmp_path_factory.mktemp("book") / "book")
    assert json.loads((index.parent / "built-from.json").read_text())["executed"] == str(EXECUTED_DIR)
    return index


@pytest.mark.browser
def test_the_book_reads_offline_in_chromium(book, chromium):
    """Every lesson is a page, its figures load, its formulas render (no raw `$$`), previous/next links work,
    the search page answers — with every request outside file:// refused."""
    page = chromium.new_page()
    refused, failed = [], []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    # a request cut short by leaving its page (net::ERR_ABORTED) is not a missing file; anything else is
    page.on("requestfailed", lambda request: None if "ERR_ABORTED" in (request.failure or "")
            else failed.append(f"{request.url} ({request.failure})"))
    page.goto(book.as_uri())
    assert "Defect detection, lesson by lesson" in page.title() or page.locator("h1").first.inner_text()
    for name in NAMES:
        html = book.parent / (Path(name).stem + ".html")
        assert html.is_file(), f"{name} has no page"
        page.goto(html.as_uri())
        page.wait_for_load_state("networkidle")  # figures, MathJax and its fonts
        text = page.locator("article").inner_text()
        assert "$$" not in text, f"{name}: a formula was left as raw TeX"
        if "$$" in Path(list_notebooks()[NAMES.index(name)]).read_text():
            page.wait_for_selector("mjx-container", timeout=30_000)  # MathJax typeset the displayed formulas
        images = page.locator("article img")
        loaded = page.evaluate("() => [...document.querySelectorAll('article img')].map(i => i.complete && i.naturalWidth > 0)")
        assert all(loaded), f"{name}: {loaded.count(False)} of {images.count()} figures did not load"
        assert "For maintainers" not in text, f"{name}: a maintainer cell is on the page"
    # previous / next: from the first lesson on, the "next" link leads through every lesson in order
    page.goto((book.parent / (Path(NAMES[0]).stem + ".html")).as_uri())
    for name in NAMES[1:]:
        with page.expect_navigation():
            page.locator("a.next-page").first.click()
        assert page.url.endswith(Path(name).stem + ".html"), f"next from the previous lesson did not lead to {name}"
    with page.expect_navigation():
        page.locator("a.prev-page").first.click()
    assert page.url.endswith(Path(NAMES[-2]).stem + ".html")
    assert not failed, f"requests failed: {failed[:3]}"
    # search: the result list comes from the bundled index (its page summaries are fetched, which file:// forbids)
    page.goto((book.parent / "search.html").as_uri() + "?q=coreset")
    page.wait_for_selector("ul.search li", timeout=30_000)
    assert page.locator("ul.search li").count() >= 1
    assert not refused, f"the book asked the network for {refused[:3]}"
