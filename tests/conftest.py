"""Shared fixtures: the emulator (tests/support/emulator.py) and the daemon runner (tests/support/daemon.py).

pytest puts this folder on sys.path (tests/ is not a package), so `support` is importable everywhere.
"""

from support.daemon import daemon_factory  # noqa: F401
from support.emulator import emulator, make_emulator  # noqa: F401
