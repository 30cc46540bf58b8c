"""The `actok` command's entry point: Ctrl-C at any moment, even while the modules are still importing, is one
line ("interrupted") and exit code 130, never a traceback."""

from __future__ import annotations

import signal
import sys


def main() -> int:
    try:
        from actok.cli import main as cli_main

        code = cli_main()
    except KeyboardInterrupt:  # before `cli.main` could catch it (imports)
        sys.stderr.write("actok: interrupted\n")
        code = 130
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # done: a late Ctrl-C must not turn into a signal death at exit
    return code
