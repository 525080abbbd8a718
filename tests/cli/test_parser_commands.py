"""A command line naming a subcommand builds only that subcommand's parser (bot.cli.parser.main): the
names ``COMMAND_MODULES`` lists are the ones each module adds, and each parser is the same either way."""

from __future__ import annotations

import argparse

import pytest

from bot.cli.parser import COMMAND_MODULES, OWN_COMMANDS, build_parser

ALL = sorted({*OWN_COMMANDS, *(c for commands in COMMAND_MODULES.values() for c in commands)})


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_listed_commands_are_every_command() -> None:
    assert sorted(subparsers(build_parser())) == ALL
    assert len(ALL) == len(OWN_COMMANDS) + sum(len(c) for c in COMMAND_MODULES.values())  # none twice


@pytest.mark.parametrize("command", ALL)
def test_a_named_command_is_parsed_by_the_same_parser(command: str) -> None:
    alone = subparsers(build_parser(command))
    full = subparsers(build_parser())
    assert command in alone and set(alone) <= set(full)
    modules = [m for m, commands in COMMAND_MODULES.items() if command in commands]
    assert set(alone) == {*OWN_COMMANDS, *(c for m in modules for c in COMMAND_MODULES[m])}
    assert alone[command].format_help() == full[command].format_help()
