"""The examples the README and the documentation site show, extracted as a reader meets them (tests/integration/test_examples.py).

- a fenced ```sh / ```bash / ```shell block: each line is a command (a trailing ``# comment`` is the reader's, not the shell's);
- a fenced ```console block: each ``$ command`` line is a command, and the lines after it, up to the next ``$``, are the
  output the docs say it prints (``…`` on a line of its own elides lines, inside a line any text);
- a code span in prose that is a whole command: ``make <target> …``, ``cascade-radar <command> …``, ``bentoml …``,
  ``mlflow server``;
- an HTTP example: a ``curl`` command of a fenced block, to the service on localhost:3000.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from cascade_radar.config import PROJECT_ROOT

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
SHELL_LANGUAGES = ("sh", "bash", "shell")
# a code span that is a command a reader would type: the program and at least one word after it
COMMAND_SPAN = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:\.venv/bin/)?(?:make|cascade-radar|bentoml|mlflow|curl)\s+\S")
SERVICE = re.compile(r"^(?:https?://)?(?:localhost|127\.0\.0\.1):3000(/\S*)$")


@dataclass(frozen=True)
class Example:
    """One documented command: where it is written, the command as written, and the output documented beside it."""

    where: str  # the document, relative to the project
    command: str
    output: tuple[str, ...] | None = None  # a console block's lines after the command (None: the docs show no output)

    @property
    def is_http(self) -> bool:
        return self.command.split()[0] == "curl"


def documents() -> list[Path]:
    """README.md and every page of the documentation site."""
    return [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]


def _command(line: str) -> str:
    """A shell line without its trailing comment, whitespace collapsed (`make train     # the main job` -> `make train`)."""
    return " ".join(re.sub(r"(^|\s)#.*$", "", line).split())


def examples(paths: list[Path] | None = None) -> list[Example]:
    """Every documented command of ``paths`` (default: ``documents()``), in the order written."""
    found: list[Example] = []
    for path in paths or documents():
        text = path.read_text()
        where = path.relative_to(PROJECT_ROOT).as_posix()
        for language, body in FENCE.findall(text):
            if language in SHELL_LANGUAGES:
                found += [Example(where, command) for line in body.splitlines() if (command := _command(line))]
            elif language == "console":
                found += _console(where, body)
        for _, span in INLINE_CODE.findall(FENCE.sub("", text)):
            if COMMAND_SPAN.match(span.strip()):
                found.append(Example(where, " ".join(span.split())))
    return found


def _console(where: str, body: str) -> list[Example]:
    """A console block's ``$ command`` lines, each with the output lines that follow it."""
    found: list[Example] = []
    command, output = None, []
    for line in [*body.splitlines(), "$"]:
        if line.startswith("$"):
            if command:
                found.append(Example(where, command, tuple(output)))
            command, output = _command(line[1:]), []
        elif command is not None:
            output.append(line)
    return found


def http_request(command: str) -> tuple[str, str, dict[str, object] | None]:
    """A documented ``curl`` command as the request it sends to the service: (method, path with its query, JSON body)."""
    words = shlex.split(command)
    if ">" in words:  # where the answer is kept is the reader's business
        words = words[: words.index(">")]
    method, body, path = "GET", None, None
    flags = iter(words[1:])
    for word in flags:
        if word == "-X":
            method = next(flags)
        elif word in ("-d", "--data", "--data-raw"):
            body = json.loads(next(flags))
            method = "POST" if method == "GET" else method
        elif word in ("-H", "--header"):
            next(flags)
        elif (m := SERVICE.match(word)) is not None:
            path = m.group(1)
    if path is None:
        raise ValueError(f"{command!r}: no request to the service on localhost:3000")
    return method, path, body


def http_examples() -> list[tuple[str, str, dict[str, object] | None]]:
    """Every HTTP example of the README and the docs, as (method, path, body)."""
    return [http_request(example.command) for example in examples() if example.is_http]
