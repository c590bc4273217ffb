"""`python -m keboola_emulator`: lets tests start the emulator without relying on PATH."""

from keboola_emulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
