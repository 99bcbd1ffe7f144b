"""Every `mobpose` option is documented: each argument of each (sub)command has a help string."""

from __future__ import annotations

import argparse

import pytest

from mobpose import cli


class _Parser(Exception):
    pass


def _main_parser(monkeypatch) -> argparse.ArgumentParser:
    """The parser `mobpose.cli.main` builds (caught at parse_args, before anything runs)."""

    def capture(self, *args, **kwargs):
        raise _Parser(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parser) as caught:
        cli.main([])
    return caught.value.args[0]


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]):
    """Yields (command path, parser) for the parser and every sub-command under it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def test_every_argument_of_every_command_has_help(monkeypatch) -> None:
    parser = _main_parser(monkeypatch)
    missing, commands = [], 0
    for path, p in _walk(parser, ("mobpose",)):
        commands += 1
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                missing += [f"{' '.join(path)} {name} (the sub-command)" for name in action.choices
                            if not (helps.get(name) or "").strip()]
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert commands >= 15  # the walk reached the sub-commands (train prm, eval lifter, weights export, ...)
    assert not missing, "arguments without help: " + ", ".join(missing)


@pytest.mark.parametrize("what", ["prm", "ipem", "lifter"])
def test_train_help_describes_the_shared_options(what, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["train", what, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("learning rate", "epochs", "batch", "seed"):
        assert words in text.lower(), f"train {what} --help says nothing about {words}"


@pytest.mark.parametrize("argv", [["bench", "kernels", "--quick"], ["train", "prm", "--out", "unused"]])
def test_a_missing_extra_is_named_in_one_line(argv, monkeypatch, capsys, tmp_path) -> None:
    """As in a base install (no torch): the command says which extra to install, without a traceback."""
    import sys

    monkeypatch.chdir(tmp_path)
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ModuleNotFoundError
    for name in [m for m in sys.modules if m.startswith(("mobpose.bench.kernels", "mobpose.train"))]:
        monkeypatch.delitem(sys.modules, name)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "needs torch" in err and "pip install 'mobpose[train]'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
