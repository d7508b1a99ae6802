"""mkdocs hook: pages generated at build time, so that they cannot drift from their sources.

- ``config-reference.md``: every key of the configuration schema (the dataclasses of
  ``audioclust.config``, the one source of the defaults) with its default, its allowed values
  (``Literal`` choices, ``min``/``max`` bounds) and its description, one table per section.
  ``configs/default.yaml`` is generated from the same schema; the build fails when the committed
  file is not the generated one (regenerate it with
  ``python -m audioclust.config > configs/default.yaml``).
- ``changelog.md``: ``CHANGELOG.md`` of the repository root, as it is.

Neither page is written into ``docs/``. To see the reference without building the site::

    python docs/hooks.py
"""

from __future__ import annotations

import html
import importlib
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

REPO = Path(__file__).resolve().parents[1]
REFERENCE_PAGE = "config-reference.md"
CHANGELOG_PAGE = "changelog.md"

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def _config_module() -> types.ModuleType:
    """``audioclust.config`` as it is now on disk (reloaded, so ``mkdocs serve`` sees edits)."""
    try:
        import audioclust.config as module
    except ImportError:  # the package is not installed in this environment: use the checkout's
        sys.path.insert(0, str(REPO / "src"))
        import audioclust.config as module
    return importlib.reload(module)


def _text(text: str) -> str:
    """Plain text as Markdown table text: HTML and Markdown characters escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _number(value: float) -> str:
    return f"{value:g}"


def allowed(hint: Any, minimum: float | None = None, maximum: float | None = None) -> str:
    """The values a key of type ``hint`` accepts, in words (Markdown)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        parts = [allowed(a, minimum, maximum) for a in args if a is not type(None)]
        return " or ".join(parts + (["`null`"] if type(None) in args else []))
    if origin is Literal:
        return ", ".join(f"`{a}`" for a in args) if len(args) > 1 else f"`{args[0]}`"
    if origin is list:
        item = allowed(args[0], minimum, maximum)
        return f"list of {item}" if typing.get_origin(args[0]) is not Literal else f"list, items from {item}"
    if origin is dict:
        value = allowed(args[1], minimum, maximum)
        return f"mapping: name → {'one of ' if typing.get_origin(args[1]) is Literal else ''}{value}"
    if hint is bool:
        return "`true`, `false`"
    if hint is str:
        return "string"
    if hint in (int, float):
        kind = "integer" if hint is int else "number"
        if minimum is not None and maximum is not None:
            return f"{kind} in [{_number(minimum)}, {_number(maximum)}]"
        if minimum is not None:
            return f"{kind} ≥ {_number(minimum)}"
        if maximum is not None:
            return f"{kind} ≤ {_number(maximum)}"
        return kind
    if hint is Any:
        return "any value"
    return f"`{getattr(hint, '__name__', hint)}`"


def _row(name: str, default: str, allowed_text: str, doc: str) -> str:
    return f"| `{name}` | {default} | {allowed_text} | {_text(doc)} |"


def render(root: Path = REPO) -> str:
    """The configuration reference page (Markdown), from the schema of ``audioclust.config``."""
    config = _config_module()
    committed = root / "configs" / "default.yaml"
    if committed.is_file() and committed.read_text(encoding="utf-8") != config.default_yaml():
        raise ValueError(f"{committed} is not the file the schema generates: run "
                         "`python -m audioclust.config > configs/default.yaml`")
    specs = list(config.schema())
    head = ["| key | default | allowed values | description |", "|:---|:---|:---|:---|"]
    out = [
        "# Configuration reference",
        "",
        "Generated from the configuration schema (the dataclasses of `audioclust.config`) when the site",
        "is built: every key, its default, the values it accepts and what it does. `configs/default.yaml`",
        "is generated from the same schema and holds the same defaults and descriptions. Set a key in",
        "`configs/<dataset>.yaml` (same nesting) or on the command line with `--set section.key=value`;",
        "see [Configuration files](configuration.md).",
        "",
    ]
    scalars = [s for s in specs if len(s.path) == 1 and not s.is_section]
    if scalars:
        out += ["## Top level", "", *head]
        out += [_row(s.name, f"`{config.yaml_value(s.default)}`", allowed(s.hint, s.minimum, s.maximum), s.doc)
                for s in scalars]
        out.append("")
    for section in (s for s in specs if s.is_section):
        level = "#" * (len(section.path) + 1)
        out += [f"{level} {section.name}", "", _text(section.doc[:1].upper() + section.doc[1:]), ""]
        keys = [s for s in specs if s.path[:-1] == section.path and not s.is_section]
        if not keys:
            continue
        out += head
        for s in keys:
            if s.items and isinstance(s.default, dict) and s.default:
                out.append(_row(s.name, "*(mapping: the rows below)*", allowed(s.hint, s.minimum, s.maximum), s.doc))
                item_hint = typing.get_args(s.hint)[1]
                out += [_row(f"{s.name}.{key}", f"`{config.yaml_value(value)}`",
                             allowed(item_hint, s.minimum, s.maximum), s.items.get(key, ""))
                        for key, value in s.default.items()]
            else:
                out.append(_row(s.name, f"`{config.yaml_value(s.default)}`",
                                allowed(s.hint, s.minimum, s.maximum), s.doc))
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- mkdocs events

def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    root = Path(config["config_file_path"]).parent
    files.append(File.generated(config, REFERENCE_PAGE, content=render(root)))
    changelog = root / "CHANGELOG.md"
    if changelog.is_file():
        files.append(File.generated(config, CHANGELOG_PAGE, content=changelog.read_text(encoding="utf-8")))
    return files


if __name__ == "__main__":
    sys.stdout.buffer.write((render() + "\n").encode("utf-8"))
