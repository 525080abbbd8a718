"""Run a command where only the loopback interface exists (a private network namespace).

Ray binds its services to the machine's primary address and never to 127.0.0.1
while another interface is up; tests may only talk over loopback, so every test
that starts Ray runs it in a network namespace of its own, where loopback is all
there is.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest


def loopback_only(argv: list[str]) -> list[str]:
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


def require_netns() -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) to run Ray on loopback only")
    probe = subprocess.run(loopback_only(["true"]), capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private network namespace here: {probe.stderr.decode()[:200]}")
