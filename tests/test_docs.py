"""Every ``python -m weakdeblur…`` command in README.md and docs/*.md runs as written: Hydra entry
points compose their overrides (in process, what ``--cfg job`` checks, no run), the others
accept ``--help`` and parse the page's arguments (stopped right after parsing). Sweeps
(``-m a,b``) are composed value by value."""

from __future__ import annotations

import argparse
import functools
import importlib
import re
import shlex
from pathlib import Path

import pytest
from conftest import CONF, PROJECT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

PAGES = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
COMMAND = re.compile(r"python -m (weakdeblur[.\w]*)(.*)")
HYDRA_MAIN = re.compile(r"@hydra\.main\([^)]*config_name=\"(\w+)\"")
PLACEHOLDER = re.compile(r"\.\.\.|\$\w|<\w+>")  # `...`, shell variables, <NAME>


def commands() -> list[tuple[str, str, list[str]]]:
    """(page:line, module, arguments) of each command in a fenced code block."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for block in FENCE.finditer(text):
            start = text.count("\n", 0, block.start(1)) + 1
            joined = re.sub(r"\\\n", " ", block.group(1))  # line continuations
            for number, line in enumerate(joined.splitlines()):
                match = COMMAND.search(line)
                if match is None or PLACEHOLDER.search(match.group(2)):
                    continue
                where = f"{page.relative_to(PROJECT)}:{start + number}"
                found.append((where, match.group(1), shlex.split(match.group(2), comments=True)))
    return found


COMMANDS = commands()


def test_the_pages_hold_the_commands():
    modules = {module for _, module, _ in COMMANDS}
    assert {"weakdeblur.run", "weakdeblur.report", "weakdeblur.dashboard"} <= modules
    readme = [args for where, module, args in COMMANDS if where.startswith("README.md")]
    for preset in ("weak_only", "weak_rec", "weak_rec_es"):
        assert [f"+exp={preset}"] in readme
    text = (PROJECT / "README.md").read_text()
    assert "make run" in text and "make test" in text
    assert len(text.splitlines()) <= 200


def config_name(module: str) -> str | None:
    """The Hydra config a ``@hydra.main`` entry point composes, ``None`` if it is not one."""
    source = importlib.util.find_spec(module).origin
    match = HYDRA_MAIN.search(Path(source).read_text())
    return match.group(1) if match else None


def one_value_at_a_time(overrides: list[str]) -> list[list[str]]:
    """A sweep's override lists: every value of every swept key, the others at their first."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    values = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [o.input_line]
        for o in parsed
    ]
    first = [choices[0] for choices in values]
    lists = [first]
    for index, choices in enumerate(values):
        lists += [first[:index] + [choice] + first[index + 1 :] for choice in choices[1:]]
    return lists


@pytest.fixture(scope="module")
def composer():
    import weakdeblur.run  # noqa: F401  (registers the resolvers the configs use)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield lambda name, overrides: compose(name, overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()


class Parsed(Exception):
    """Raised right after a command line parsed: the command would run."""


def check_arguments(main, arguments: list[str], monkeypatch) -> None:
    parse_args = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        parse_args(self, args, namespace)  # SystemExit(2) on an unknown or bad argument
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    with pytest.raises(Parsed):
        main(arguments)


@pytest.mark.parametrize(("where", "module", "arguments"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_command_runs_as_written(where, module, arguments, composer, capsys, monkeypatch):
    name = config_name(module)
    if name is None:
        main = importlib.import_module(module).main
        with pytest.raises(SystemExit) as exit_:
            main(["--help"])
        assert exit_.value.code == 0, f"{where}: {module} --help failed"
        assert "usage:" in capsys.readouterr().out
        check_arguments(main, arguments, monkeypatch)
        return
    overrides = [a for a in arguments if a not in ("-m", "--multirun")]
    for chosen in one_value_at_a_time(overrides) if "-m" in arguments else [overrides]:
        config = composer(name, chosen)  # raises on an unknown key, group or option
        assert config is not None, where


LINK = re.compile(r"\]\(([^)\s]+)\)")


@functools.cache  # each page parsed once, however many links point into it
def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings: lower case, punctuation other than '-'
    and '_' dropped, spaces to '-', a repeated anchor suffixed -1, -2, ..."""
    anchors: set[str] = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if match := re.match(r"#{1,6}\s+(.*?)\s*#*$", line):
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            anchor, n = slug, 0
            while anchor in anchors:
                n += 1
                anchor = f"{slug}-{n}"
            anchors.add(anchor)
    return anchors


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path) if path else page
            if linked.is_dir() and anchor:  # a folder's anchors are those of its README
                linked = linked / "README.md"
            if not linked.exists():
                broken.append(f"{page.relative_to(PROJECT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
                broken.append(f"{page.relative_to(PROJECT)}: {target} (no such heading)")
    assert not broken


def test_heading_anchors_follow_github():
    page = PROJECT / "docs" / "portfolio.md"
    assert "pruning-while-running-portfolioprune_at" in heading_anchors(page)
