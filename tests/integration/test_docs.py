"""The front door: a short README whose links resolve and whose commands exist, and a documentation site that builds strict.

The site is MkDocs + Material (mkdocs.yml, docs/): under ``strict: true`` a link to a missing page or anchor, or a page left
out of the nav, fails the build. The README's and the docs' commands are checked against the Makefile's targets and the
``cascade-radar`` parser, so a renamed target or subcommand fails here instead of on a reader's machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from cascade_radar.config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
README_MAX_LINES = 200  # issue 36: a newcomer reads it in five minutes; the rest is in docs/
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|(?:href|src)=\"([^\"]+)\"")
# `make <target>`, optionally after VAR=value words (`ASSET=ETH make train`), as a shell line or a code span says it
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+((?:[A-Z_]+=\S*\s+)*)([a-z][\w-]*)")
CLI = re.compile(r"(?:^|[\s;&|(/`])(?:cascade-radar|python -m cli)\s+([^\n;&|#`]*)")


def documents() -> list[Path]:
    return [README, *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]


def shell_blocks(text: str) -> list[str]:
    """The fenced ```sh / ```bash / ```shell blocks of a Markdown text."""
    return [body for lang, body in FENCE.findall(text) if lang in ("sh", "bash", "shell", "console")]


def code_spans(text: str) -> list[str]:
    """Inline code spans, outside fenced blocks."""
    return [span.strip() for _, span in INLINE_CODE.findall(FENCE.sub("", text))]


def makefile_targets() -> set[str]:
    text = (PROJECT_ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M)}


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, code marks and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_the_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move the detail to a page of docs/"


def test_every_relative_link_in_the_readme_resolves_to_a_file_of_the_project() -> None:
    text = README.read_text()
    anchors = {github_slug(h) for h in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", text), re.M)}
    checked, broken = 0, []
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z][a-z+.-]*:", target):  # http(s):, mailto: — not a file of the project
            continue
        path, _, anchor = unquote(target).partition("#")
        checked += 1
        if not path:
            if anchor not in anchors:
                broken.append(f"{target}: no heading with that anchor")
            continue
        resolved = (PROJECT_ROOT / path).resolve()
        if not resolved.is_relative_to(PROJECT_ROOT.resolve()) or not resolved.exists():
            broken.append(f"{target}: no such file in the project")
    assert checked >= 10, f"only {checked} relative links found in README.md: the link pattern no longer matches"
    assert not broken, "README.md links that do not resolve:\n" + "\n".join(broken)
    assert "](docs/glossary.md)" in text  # the glossary is one click from the front door (tests/unit/test_glossary.py)


def test_the_documentation_site_builds_in_strict_mode(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs / mkdocs-material are not installed (dev extra: `make setup` installs them from requirements.lock)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(PROJECT_ROOT / "mkdocs.yml"), "-d", str(site)],
                         capture_output=True, text=True, timeout=180, env=env, cwd=PROJECT_ROOT)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    pages = sorted(site.rglob("*.html"))
    for name in ("index.html", "getting-started.html", "glossary.html", "features.html", "api.html", "operations.html"):
        assert (site / name).is_file(), name
    # nothing a page loads comes from another host (no web fonts, analytics or CDN): the docs work offline, as the service does
    remote = re.compile(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I)
    loading = [str(page.relative_to(site)) for page in pages if remote.search(page.read_text(errors="replace"))]
    assert not loading, f"pages that load something from another host: {loading}"
    print(f"built {len(pages)} pages strict")


def test_every_make_target_the_readme_and_docs_name_exists() -> None:
    targets = makefile_targets()
    assert {"setup", "train", "test", "docs", "docs-serve"} <= targets
    named, missing = 0, []
    for doc in documents():
        text = doc.read_text()
        for code in [*shell_blocks(text), *code_spans(text)]:
            for m in MAKE.finditer(code):
                named += 1
                if m.group(2) not in targets:
                    missing.append(f"{doc.relative_to(PROJECT_ROOT)}: make {m.group(2)}")
    readme_blocks = "\n".join(shell_blocks(README.read_text()))
    assert all(f"make {t}" in readme_blocks for t in ("setup", "train", "test")), "the README's quick start names make setup, make train and make test"
    ci = [line.strip() for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines() if line.strip().startswith("make ")]
    assert ci and all(re.search(rf"^{re.escape(line)}\b", readme_blocks, re.M) for line in ci), f"CI runs {ci}: the README's set-up and test commands"
    assert not missing, "make targets named in the docs but not in the Makefile:\n" + "\n".join(sorted(set(missing)))
    print(f"{named} make commands checked")


def _parses(argv: list[str]) -> bool:
    """Whether the cascade-radar parser takes ``argv`` (``--help`` exits 0; an unknown subcommand or option exits 2)."""
    from cli.main import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as stop:
        return stop.code == 0
    return True


def test_every_cascade_radar_command_the_readme_and_docs_name_exists(capsys: pytest.CaptureFixture[str]) -> None:
    """Shell blocks: the whole command line must parse. Code spans in prose: each subcommand (and sub-subcommand) must exist."""
    checked, wrong = 0, []
    for doc in documents():
        text = doc.read_text()
        where = doc.relative_to(PROJECT_ROOT)
        for block in shell_blocks(text):
            for line in block.splitlines():
                for m in CLI.finditer(line.split("#", 1)[0]):
                    argv = shlex.split(m.group(1).strip())
                    checked += 1
                    if not _parses(argv):
                        wrong.append(f"{where}: cascade-radar {' '.join(argv)}")
        for span in code_spans(text):
            for m in CLI.finditer(span):
                words = re.match(r"\s*([a-z][a-z-]*)\b(?!-)(?:\s+([a-z][a-z-]*)\b(?!-))?", m.group(1))
                if not words:
                    continue  # `cascade-radar --help`, `cascade-radar …`
                command, sub = words.groups()
                checked += 1
                if not _parses([command, "--help"]) or (sub and _has_subcommands(command) and not _parses([command, sub, "--help"])):
                    wrong.append(f"{where}: `{span}`")
    capsys.readouterr()  # the --help texts
    assert checked >= 20, f"only {checked} cascade-radar commands found: the patterns no longer match"
    assert not wrong, "cascade-radar commands named in the docs that the CLI does not have:\n" + "\n".join(sorted(set(wrong)))
    print(f"{checked} cascade-radar commands checked")


def _has_subcommands(command: str) -> bool:
    """A command whose next word must be a subcommand (`data update`, `features list`): the bare command is refused."""
    return not _parses([command])
