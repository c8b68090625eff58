"""Runs ``ispan`` with the given arguments and prints the process's peak RSS (VmHWM) on exit.

ru_maxrss of a child started from pytest would be the child's own, but VmHWM read by the child
itself at exit is the same figure without any dependence on how it was started.
"""

import atexit
import sys


def _report() -> None:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                print("PEAK_RSS_KB", line.split()[1], file=sys.stderr)


atexit.register(_report)
sys.argv = ["ispan", *sys.argv[1:]]
from ispan_cli.app import main  # noqa: E402

main()
