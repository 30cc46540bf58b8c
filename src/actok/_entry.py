"""The `actok` command's entry point: Ctrl-C at any moment of actok's run, even while its modules are still
importing, is one line ("interrupted") and exit code 130, never a traceback."""

from __future__ import annotations

import os
import signal
import sys


def main() -> int:
    # While the modules import, a Ctrl-C is only noted: raised inside an import it can surface as another error
    # (numpy turns it into an ImportError). It is acted on as soon as the imports are done.
    interrupted: list[int] = []
    default = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    from actok.cli import main as cli_main

    signal.signal(signal.SIGINT, default)
    if interrupted:  # nothing was done yet
        sys.stderr.write("actok: interrupted\n")
        sys.stderr.flush()
        os._exit(130)
    code = cli_main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # done: a late Ctrl-C must not turn into a signal death at exit
    if code == 130:  # interrupted, and already cleaned up by `cli.main`: leave with 130, not by the signal
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return code
