"""Suite-wide hygiene: every test starts with Ctrl-C as a shell gives it.

Tests that send SIGINT to an `ispan` subprocess rely on the child getting Python's default
handling. A child inherits its parent's SIGINT disposition and blocked mask, so a test (or a
library) that leaves SIGINT ignored or blocked in the pytest process would make a later Ctrl-C
test fail for no fault of the code under test (seen once under pytest-xdist). Whoever left it
so is named in a warning.
"""

from __future__ import annotations

import signal
import threading
import warnings

import pytest


@pytest.fixture(autouse=True)
def _sigint_as_from_a_shell(request):
    yield
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGINT)
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if handler is not signal.default_int_handler or blocked:
        warnings.warn(
            f"{request.node.nodeid} left SIGINT {'blocked' if blocked else handler!r}; restored",
            stacklevel=1,
        )
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
