"""The README and the guides in docs/ point at things that exist.

- every relative Markdown link and image (and its `#anchor`) names an existing file
  (and a heading in it);
- every `configs/<name>.yaml`, and every `benchmarks/`, `export/`, `tests/` or `enc_tf/`
  file named, exists;
- every `--flag` written on a command line of one of our commands (the console scripts
  of pyproject.toml, `python train.py`, `python -m enc_tf.<module>`, `python export/<script>.py`)
  is an option of that command's parser (of its sub-command's, for `enc-data check ...`).

No network, no subprocess: each command's parser is built by calling its `main` with
`run_cli` replaced by a stand-in that returns the parser unparsed.
"""

import argparse
import functools
import importlib
import os
import re
from pathlib import Path

import pytest
import tomllib

import _enc_tf_launch

ROOT = Path(__file__).resolve().parents[1]


def documents():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def prose(text):
    """`text` without fenced code blocks and code spans (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def link_targets(text):
    body = prose(text)
    return [m.group(1) for m in LINK.finditer(body)] + REFERENCE.findall(body)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    found, seen = set(), {}
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problems(doc, text):
    """The links of `text` (the contents of the Markdown file `doc`) that lead nowhere."""
    problems = []
    for target in link_targets(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.exists():
            problems.append(f"{target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading with anchor #{anchor} in {resolved.name}")
    return problems


# `configs/` is flat (MMSegmentation's `configs/encnet/metafile.yaml` is not ours)
REPO_FILE = re.compile(
    r"(?<![\w./-])(configs/[\w.-]+\.yaml|(?:benchmarks|export|tests|enc_tf)/[\w./-]*\.py)\b"
)


def missing_files(text):
    """Repository files (`configs/*.yaml`, `benchmarks/*.py`, ...) named in `text` that do
    not exist."""
    return sorted({p for p in REPO_FILE.findall(text) if not (ROOT / p).exists()})


# --- command lines -----------------------------------------------------------------------


def console_scripts():
    """`{name: module}` from pyproject.toml's `[project.scripts]`."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    return {name: _launched(target.split(":")[1]) for name, target in scripts.items()}


def _launched(entry):
    """The enc_tf module whose `main` the launcher's entry point `entry` runs."""
    return getattr(_enc_tf_launch, entry).module


def _module_of_script(path):
    """The enc_tf module whose `main` a root script or `__main__.py` calls."""
    if not path.is_file():
        return None
    text = path.read_text()
    match = re.search(r"^from (enc_tf[\w.]*) import main\b", text, re.M)
    if match:
        return match.group(1)
    match = re.search(r"^from _enc_tf_launch import (\w+) as main\b", text, re.M)
    return _launched(match.group(1)) if match else None


def command_module(tokens):
    """`(module, number of tokens the command name took)` when `tokens` start one of our
    commands, else `(None, 0)`."""
    i = 0
    while i < len(tokens) and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[i]):  # VAR=value ...
        i += 1
    if i >= len(tokens):
        return None, 0
    first = os.path.basename(tokens[i])
    scripts = console_scripts()
    if first in scripts:
        return scripts[first], i + 1
    if not re.fullmatch(r"python(3(\.\d+)?)?", first) or i + 1 >= len(tokens):
        return None, 0
    nxt = tokens[i + 1]
    if nxt == "-m" and i + 2 < len(tokens):
        module = tokens[i + 2]
        if not module.startswith("enc_tf"):
            return None, 0
        package_main = ROOT.joinpath(*module.split("."), "__main__.py")
        return _module_of_script(package_main) or module, i + 3
    if nxt.endswith(".py"):
        return _module_of_script(ROOT / nxt), i + 2
    return None, 0


class _Parser(Exception):
    def __init__(self, parser):
        self.parser = parser


@functools.lru_cache(maxsize=None)
def command_parser(module_name):
    """The argparse parser that `module_name`'s `main` builds (not run)."""
    module = importlib.import_module(module_name)

    def capture(parser, run, argv=None):
        raise _Parser(parser)

    original = module.run_cli
    module.run_cli = capture
    try:
        module.main([])
    except _Parser as got:
        return got.parser
    finally:
        module.run_cli = original
    raise AssertionError(f"{module_name}.main did not build a parser")


def options(parser):
    # run_cli gives every parser and sub-parser --verbose
    return {o for a in parser._actions for o in a.option_strings} | {"--verbose"}


def subcommands(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def command_lines(text):
    """Every command line in `text`: fenced code blocks line by line (joining `\\`
    continuations), and inline code spans, each split at `;`, `&&`, `||` and ` | ` and
    cut at a shell comment."""
    pieces = []
    for block in FENCE.finditer(text):
        body = block.group(0).split("\n", 1)[1].rsplit("\n", 1)[0]
        pieces += re.sub(r"\\\n", " ", body).splitlines()
    pieces += [m.group(2) for m in CODE_SPAN.finditer(FENCE.sub("", text))]
    lines = []
    for piece in pieces:
        piece = re.sub(r"(^|\s)#.*$", "", piece)  # a comment (not a URL's #fragment)
        lines += [p.strip() for p in re.split(r";|&&|\|\||\s\|\s", piece) if p.strip()]
    return lines


def flag_problems(text):
    """Flags written on our command lines in `text` that the command does not take."""
    problems = []
    for line in command_lines(text):
        tokens = [t.strip("[]()'\",") for t in line.split()]
        tokens = [t for t in tokens if t]
        module, used = command_module(tokens)
        if module is None:
            continue
        parser = command_parser(module)
        accepted = options(parser)
        subs = subcommands(parser)
        for token in tokens[used:]:
            if subs and not token.startswith("-"):
                # the first positional word names the sub-command
                if token in subs:
                    accepted, subs = options(subs[token]), {}
                    continue
                if re.fullmatch(r"[a-z][a-z0-9-]*", token):
                    problems.append(f"{line!r}: {module} has no sub-command {token!r}")
                    break
            flag = re.match(r"^(--[A-Za-z0-9][\w-]*)", token)
            if flag and flag.group(1) not in accepted:
                problems.append(f"{line!r}: {module} does not take {flag.group(1)}")
    return problems


# --- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("doc", documents(), ids=_ids(documents()))
def test_links_lead_to_files_and_headings(doc):
    assert link_problems(doc, doc.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("doc", documents(), ids=_ids(documents()))
def test_named_repository_files_exist(doc):
    assert missing_files(doc.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("doc", documents(), ids=_ids(documents()))
def test_command_line_flags_are_accepted(doc):
    assert flag_problems(doc.read_text(encoding="utf-8")) == []


def test_the_checks_can_fail():
    """Each check catches what it is for, on text made to be wrong."""
    readme = ROOT / "README.md"
    assert link_problems(readme, "[guide](docs/no_such_guide.md)")
    assert link_problems(readme, "![figure](docs/no_such_figure.png)")
    assert link_problems(readme, "[a](docs/index.md#no-such-heading)")
    assert not link_problems(readme, "[a](https://example.com/x.md) [b](docs/index.md)")
    assert missing_files("`configs/no_such_recipe.yaml`") == ["configs/no_such_recipe.yaml"]
    assert flag_problems("```\nenc-eval model.keras \\\n    --no-such-flag 1\n```")
    assert flag_problems("`enc-data check --dataset folder --shards 4`")  # to-tfrecord's
    assert flag_problems("`enc-demo --no-such-flag`")
    assert flag_problems("`.venv/bin/python train.py --cfg x.yaml`")
    assert not flag_problems("`enc-data to-tfrecord --dataset folder --root r --out o --shards 4`")
    assert not flag_problems("`python export/to_onnx.py run --out m.onnx --opset 17`")
