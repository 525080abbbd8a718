"""``neuralbot`` and ``python -m bot``: the command line, with ``run`` safe from an early SIGHUP."""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:2] == ["run"]:
        # first, before anything that could take long: SIGHUP is handled from here on
        from bot.app.early_signals import remember_sighup

        remember_sighup()  # before the second of imports below (see bot.app.early_signals)
    # deferred: the whole CLI loads after the SIGHUP handler is in place
    from bot.cli.parser import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
