"""Write docs/cli.md, the command-line reference, from the `satimp` argparse parser.

    python scripts/cli_docs.py           # (re)write docs/cli.md
    python scripts/cli_docs.py --check   # exit 1 if docs/cli.md is not what it would write

One section per command and subcommand (nested ones such as `data synth` included, found by
walking argparse's subparser actions), each with its summary, a usage synopsis and one table
per argument group. The text depends on the parser alone: argparse's help formatter is not
used, so neither the terminal width (COLUMNS) nor the program name (sys.argv[0]) can change
it; command names are built from the subcommand path under `satimp`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from satimp.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"
PROGRAM = "satimp"
USAGE_WIDTH = 88  # the synopsis is wrapped at this many characters, whatever the terminal
REGENERATE = "python scripts/cli_docs.py"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, help) of each direct subcommand, in the order they were added."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            # _choices_actions holds one pseudo-action per add_parser call (aliases excluded)
            for choice in action._choices_actions:
                found.append((choice.dest, action.choices[choice.dest], choice.help or ""))
    return found


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), summary: str = ""
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every command depth-first: (subcommand path, its parser, its one-line help)."""
    yield path, parser, summary
    for name, sub, text in _subcommands(parser):
        yield from walk(sub, (*path, name), text)


def _command(path: tuple[str, ...]) -> str:
    return " ".join((PROGRAM, *path))


def _value(action: argparse.Action) -> str:
    """The value placeholder: the metavar, the choices, or the dest in capitals."""
    if action.metavar is not None and not isinstance(action.metavar, tuple):
        return str(action.metavar)
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    if not action.option_strings:
        return action.dest
    # named after the flag, not the dest: `--epochs EPOCHS`, not argparse's TRAIN_EPOCHS
    long = next((s for s in action.option_strings if s.startswith("--")), action.option_strings[0])
    return long.lstrip("-").replace("-", "_").upper()


def _values(action: argparse.Action) -> str:
    """What follows an option (or stands for a positional), as argparse's usage writes it."""
    if isinstance(action, argparse._SubParsersAction):
        return "COMMAND ..."
    nargs = action.nargs
    if nargs == 0:
        return ""
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    v = _value(action)
    if nargs is None:
        return v
    if nargs == "?":
        return f"[{v}]"
    if nargs == "*":
        return f"[{v} ...]"
    if nargs == "+":
        return f"{v} [{v} ...]"
    if isinstance(nargs, int):
        return " ".join([v] * nargs)
    return v  # argparse.REMAINDER and the like


def _flag(action: argparse.Action) -> str:
    """The option as one usage word: `--x` (or `--[no-]x` for a BooleanOptionalAction)."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return action.option_strings[0].replace("--", "--[no-]", 1)
    return action.option_strings[0]


def _shown(action: argparse.Action) -> bool:
    return not isinstance(action, argparse._HelpAction) and action.help != argparse.SUPPRESS


def usage(path: tuple[str, ...], parser: argparse.ArgumentParser) -> str:
    """A synopsis in argparse's notation (options, then positionals), wrapped at USAGE_WIDTH."""
    shown = [a for a in parser._actions if _shown(a)]
    words = []
    for action in (a for a in shown if a.option_strings):
        word = " ".join(w for w in (_flag(action), _values(action)) if w)
        words.append(word if _required(action) else f"[{word}]")
    words += [_values(a) for a in shown if not a.option_strings]  # as argparse: options first
    lines, line = [], _command(path)
    indent = " " * (len(line) + 1)
    for word in words:
        if len(line) + 1 + len(word) > USAGE_WIDTH and line.strip():
            lines.append(line)
            line = indent + word
        else:
            line = f"{line} {word}"
    return "\n".join([*lines, line])


def _help(action: argparse.Action, prog: str) -> str:
    """The help text with argparse's %-expansion (%(default)s, %%), on one line."""
    text = action.help or ""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params = {k: getattr(v, "__name__", v) for k, v in params.items()}
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    try:
        text = text % dict(params, prog=prog)
    except (KeyError, TypeError, ValueError):
        pass  # not a format string after all: show it as written
    return " ".join(text.split()).replace("|", "\\|")


def _required(action: argparse.Action) -> bool:
    # argparse marks a `*` positional required; it is not: it takes zero or more values
    if not action.option_strings:
        return action.nargs not in ("?", "*")
    return action.required


def _default(action: argparse.Action) -> str:
    if _required(action):
        return "required"
    if isinstance(action, argparse._StoreTrueAction):
        return "off"
    if isinstance(action, argparse._StoreFalseAction):
        return "on"
    default = action.default
    if default is None or default is argparse.SUPPRESS:
        return "—"
    if isinstance(default, (list, tuple)):
        return "`" + " ".join(str(d) for d in default) + "`"
    return f"`{default}`"


def _row(action: argparse.Action, prog: str) -> str:
    if action.option_strings:
        names = ", ".join(f"`{s}`" for s in action.option_strings)
        value = _values(action)
    else:  # a positional: its name, and its repetition only when it has one
        names = f"`{_value(action)}`"
        value = _values(action) if action.nargs is not None else ""
    value = f"`{value}`" if value else "—"
    return f"| {names} | {value} | {_default(action)} | {_help(action, prog)} |"


def _group_title(parser: argparse.ArgumentParser, group: argparse._ArgumentGroup) -> str:
    # argparse's own titles changed between versions ('optional arguments' → 'options')
    if group is parser._positionals:
        return "Positional arguments"
    if group is parser._optionals:
        return "Options"
    return group.title or "Options"


def section(path: tuple[str, ...], parser: argparse.ArgumentParser, summary: str) -> str:
    """The Markdown section of one command."""
    prog = _command(path)
    out = [f"## {prog}", ""]
    for text in dict.fromkeys(t for t in (summary, parser.description) if t):
        out += [" ".join(text.split()), ""]
    out += ["```text", usage(path, parser), "```", ""]
    subs = _subcommands(parser)
    if subs:
        out += ["| command | summary |", "|---|---|"]
        out += [f"| [`{_command((*path, n))}`](#{_anchor((*path, n))}) | {h} |" for n, _, h in subs]
        out.append("")
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if _shown(a) and not isinstance(a, argparse._SubParsersAction)
        ]
        if not actions:
            continue
        out += [f"**{_group_title(parser, group)}**", ""]
        if group.description:
            out += [" ".join(group.description.split()), ""]
        out += ["| argument | value | default | description |", "|---|---|---|---|"]
        out += [_row(a, prog) for a in actions]
        out.append("")
    if parser.epilog:
        out += [" ".join(parser.epilog.split()), ""]
    return "\n".join(out)


def _anchor(path: tuple[str, ...]) -> str:
    """The heading's anchor as GitHub and most renderers make it."""
    return "-".join((PROGRAM, *path)).lower()


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """docs/cli.md's text for `parser` (default: `satimp.cli.build_parser()`)."""
    parser = parser or build_parser()
    head = [
        "# Command-line reference",
        "",
        f"<!-- Generated from satimp.cli.build_parser() by scripts/cli_docs.py: run "
        f"`{REGENERATE}` after changing a flag; do not edit by hand. -->",
        "",
        "Every `satimp` command and subcommand with its arguments. An argument whose default is",
        "— is unset unless given: the config file or the command's own default decides.",
        "",
    ]
    commands = list(walk(parser))
    head += [f"- [`{_command(p)}`](#{_anchor(p)})" for p, _, _ in commands]
    head.append("")
    body = [section(p, sub, summary) for p, sub, summary in commands]
    return "\n".join(head + body).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    ap.add_argument("--out", type=Path, default=CLI_MD, help="default: docs/cli.md")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
            print(f"{shown} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
