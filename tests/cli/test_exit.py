"""``neuralbot`` leaves its heap frozen when the command returns, so the collection the interpreter
runs at exit skips it (with torch and the models loaded, ~0.5-0.9 s of every command: bench_cli)."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO


def test_the_command_returns_with_its_heap_frozen() -> None:
    probe = ("import gc, sys\nsys.argv = ['neuralbot']  # no command: the usage, exit 2\nfrom bot.__main__ import main\n"
             "before = gc.get_freeze_count()\nmain()\nprint(before, gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()[-1]
    before, after = map(int, out.split())
    assert before == 0 and after > 1000  # every object alive at the end: modules, the parser, ...
