"""The documentation: the generated CLI reference is current, links resolve, pages stay short.

docs/cli.md is written by scripts/cli_docs.py from `satimp.cli.build_parser()`; a flag changed
without regenerating it fails here. Every relative link or image in README.md and docs/*.md
must name a file that exists (web and mail links are not checked; `#anchors` are stripped).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GENERATED = {ROOT / "docs" / "cli.md"}
README_MAX_LINES = 250
DOC_MAX_LINES = 450


def _module(path: Path):
    """A script as a module (scripts/ and bench/ are not packages)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cli_docs():
    return _module(ROOT / "scripts" / "cli_docs.py")


# ------------------------------------------------------------------- the CLI reference


def test_cli_md_is_current():
    expected = _cli_docs().render()
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == expected, "docs/cli.md is stale: run `python scripts/cli_docs.py`"


def test_cli_docs_ignore_terminal_width_and_program_name(monkeypatch):
    cli_docs = _cli_docs()
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["satimp"])
    wide = cli_docs.render()
    monkeypatch.setenv("COLUMNS", "30")
    monkeypatch.setattr(sys, "argv", ["/somewhere/else/prog.py"])
    assert cli_docs.render() == wide


def test_cli_docs_cover_nested_commands():
    text = _cli_docs().render()
    for heading in ("## satimp data synth", "## satimp unlearn", "## satimp study"):
        assert heading + "\n" in text
    assert "| `--out` | `OUT` | required |" in text


def test_cli_docs_check_flags_a_stale_file(tmp_path, capsys):
    cli_docs = _cli_docs()
    out = tmp_path / "cli.md"
    assert cli_docs.main(["--check", "--out", str(out)]) == 1  # missing
    assert cli_docs.main(["--out", str(out)]) == 0
    assert cli_docs.main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8").replace("--overwrite", "--overwrit", 1))
    assert cli_docs.main(["--check", "--out", str(out)]) == 1
    assert "python scripts/cli_docs.py" in capsys.readouterr().err


# ------------------------------------------------------------------- links

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)  # fenced code blocks
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)  # inline code
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
HTML_REF = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.I)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, …


def link_targets(text: str) -> list[str]:
    """Targets of the Markdown links, images, reference definitions and HTML <a>/<img> in
    `text`, outside code blocks and code spans, in order."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    found = []
    for pattern in (INLINE_LINK, REFERENCE_DEF, HTML_REF):
        found += [(m.start(), m.group(1).strip("<>")) for m in pattern.finditer(text)]
    return [target for _, target in sorted(found)]


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative link targets of `page` that name no existing file or folder. Paths are
    relative to the page's folder (or to `root` when they start with '/'); web and mail
    links are skipped and '#anchor' / '?query' parts stripped."""
    broken = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        path = unquote(re.split(r"[#?]", target, maxsplit=1)[0])
        if not path:  # a link to an anchor of the same page
            continue
        resolved = root / path.lstrip("/") if path.startswith("/") else page.parent / path
        if not resolved.exists():
            broken.append(target)
    return broken


def test_link_check_finds_only_the_broken_link(tmp_path):
    (tmp_path / "docs" / "img").mkdir(parents=True)
    (tmp_path / "docs" / "img" / "plot.png").write_bytes(b"")
    (tmp_path / "docs" / "other.md").write_text("# other\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        'A [good link](other.md#section), an ![image](img/plot.png "title"),\n'
        "a [web link](https://example.org/missing.md), [mail](mailto:a@b.c),\n"
        "an [anchor](#top), [up](../docs/other.md) and a [broken one](missing.md).\n"
        "`[not a link](nowhere.md)` in code, and in a block:\n"
        "```\n[also not](nowhere.md)\n```\n~~~\n![nor this](nowhere.png)\n~~~\n"
        '<img src="img/gone.png" alt="x">\n'
    )
    assert broken_links(page, root=tmp_path) == ["missing.md", "img/gone.png"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == [], f"{page.relative_to(ROOT)}: links to missing files"


# ------------------------------------------------------------------- length


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_stay_short(page):
    if page in GENERATED:
        pytest.skip("generated")
    limit = README_MAX_LINES if page.name == "README.md" else DOC_MAX_LINES
    lines = len(page.read_text(encoding="utf-8").splitlines())
    assert lines <= limit, f"{page.relative_to(ROOT)} has {lines} lines (at most {limit})"


# ------------------------------------------------------------------- supported versions


def test_supported_transformers_range_is_stated_and_holds_the_installed_release():
    """pyproject.toml bounds transformers on both sides (the low end is what
    bench/transformers_low.py tests), docs/integrations.md states the same range, and the
    release under test, CI's high end, lies in it."""
    from packaging.version import Version
    from transformers import __version__ as installed

    low, high = _module(ROOT / "bench" / "transformers_low.py").supported_range()
    assert f"`transformers>={low},<{high}`" in (ROOT / "docs" / "integrations.md").read_text()
    assert Version(low) <= Version(installed) < Version(high)
