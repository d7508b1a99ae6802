"""mkdocs hook: pages generated at build time, so that they cannot drift from their sources.

- ``config-reference.md``: every key of ``configs/default.yaml`` with its default and its
  comment, one table per section. The file is parsed twice: line by line for the comments
  and with PyYAML for the values; the build fails when the two disagree or a key has no
  comment.
- ``changelog.md``: ``CHANGELOG.md`` of the repository root, as it is.

Neither page is written into ``docs/``. To see the reference without building the site::

    python docs/hooks.py [configs/default.yaml]
"""

from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REFERENCE_PAGE = "config-reference.md"
CHANGELOG_PAGE = "changelog.md"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|])")


@dataclass
class Entry:
    """One key of the YAML file."""

    path: tuple[str, ...]
    value: str    # the value as written ('' for a mapping written as an indented block)
    comment: str  # the key's comment on its own line ('' when it has none)


def split_comment(text: str) -> tuple[str, str]:
    """``value  # comment`` -> (value, comment); a ``#`` inside quotes belongs to the value."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].strip(), text[i + 1:].strip()
    return text.strip(), ""


def parse_entries(text: str) -> tuple[list[Entry], list[str]]:
    """Every key of a block-style YAML mapping, in file order, and the file's leading comment lines."""
    entries: list[Entry] = []
    header: list[str] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    for line in text.splitlines():
        stripped = line.strip()
        if not entries and stripped.startswith("#"):
            header.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, comment = split_comment(match["rest"])
        path = (*(key for _, key in stack), match["key"])
        entries.append(Entry(path=path, value=value, comment=comment))
        if not value:
            stack.append((indent, match["key"]))
    return entries, header


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _leaves(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(data, dict) and data:
        return [leaf for key, value in data.items() for leaf in _leaves(value, (*prefix, str(key)))]
    return [prefix]


def check(entries: list[Entry], data: dict[str, Any], source: str) -> None:
    """Raise ValueError when the line parse and PyYAML disagree or a leaf key has no comment."""
    problems = []
    seen = set()
    for entry in entries:
        seen.add(entry.path)
        if entry.value and yaml.safe_load(entry.value) != _lookup(data, entry.path):
            problems.append(f"{'.'.join(entry.path)}: the value as written does not parse to the loaded default")
        if entry.value and not entry.comment:
            problems.append(f"{'.'.join(entry.path)}: no comment")
    # a value written inline ({a: 1}, [x, y]) is one entry; PyYAML's leaves lie below it
    problems += [f"{'.'.join(leaf)}: not found by the line parser" for leaf in _leaves(data)
                 if not any(leaf[:n] in seen for n in range(1, len(leaf) + 1))]
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))


def _text(comment: str) -> str:
    """A YAML comment as Markdown table text: HTML and Markdown characters escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(comment, quote=False))


def render(path: Path) -> str:
    """The configuration reference page (Markdown) of the YAML file at ``path``."""
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    entries, header = parse_entries(text)
    check(entries, data, str(path))
    out = [
        "# Configuration reference",
        "",
        f"Generated from `configs/{path.name}` when the site is built: every key, its default and the comment",
        "next to it in that file. Set a key in `configs/<dataset>.yaml` (same nesting) or on the command line",
        "with `--set section.key=value`; see [Configuration files](configuration.md).",
        "",
    ]
    if header:
        out += ["> " + _text(line) if line else ">" for line in header] + [""]
    scalars = [e for e in entries if len(e.path) == 1 and e.value]
    if scalars:
        out += ["## Top level", "", "| key | default | description |", "|:---|:---|:---|"]
        out += [f"| `{e.path[0]}` | `{e.value}` | {_text(e.comment)} |" for e in scalars]
        out.append("")
    for section in (e for e in entries if len(e.path) == 1 and not e.value):
        out += [f"## {section.path[0]}", ""]
        if section.comment:
            out += [_text(section.comment[:1].upper() + section.comment[1:]), ""]
        out += ["| key | default | description |", "|:---|:---|:---|"]
        for e in entries:
            if len(e.path) > 1 and e.path[0] == section.path[0]:
                default = f"`{e.value}`" if e.value else "*(mapping: the rows below)*"
                out.append(f"| `{'.'.join(e.path)}` | {default} | {_text(e.comment)} |")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- mkdocs events

def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    root = Path(config["config_file_path"]).parent
    files.append(File.generated(config, REFERENCE_PAGE, content=render(root / "configs" / "default.yaml")))
    changelog = root / "CHANGELOG.md"
    if changelog.is_file():
        files.append(File.generated(config, CHANGELOG_PAGE, content=changelog.read_text(encoding="utf-8")))
    return files


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1] if len(sys.argv) > 1 else "configs/default.yaml")) + "\n")
