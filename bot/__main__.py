"""``neuralbot`` and ``python -m bot``: the command line, with ``run`` safe from an early SIGHUP."""

from __future__ import annotations

import gc
import sys


def main() -> int:
    if sys.argv[1:2] == ["run"]:
        # first, before anything that could take long: SIGHUP is handled from here on
        from bot.app.early_signals import remember_sighup

        remember_sighup()  # before the second of imports below (see bot.app.early_signals)
    # deferred: the whole CLI loads after the SIGHUP handler is in place
    from bot.cli.parser import main as cli_main

    try:
        return cli_main()
    finally:
        # what the command built dies with the process: the collection at interpreter exit skips
        # the frozen heap (with torch and the models loaded it took ~0.5-0.9 s of every command)
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
