"""Nothing hangs on a Hub: `--timeout` bounds every Hub request of every command that loads a
model, a Hub that trickles ends too, and Ctrl-C stops a download at once (exit status 130).

The Hub is tests/hub/hostile_hub.py: an answer that never comes ("hang"), one that trickles a
byte a second from its status line ("trickle") or from its body ("trickle-body"), at each step
of a download: the revision info, the tree listing, a file's HEAD, a file's GET. Commands run in
subprocesses: exit codes, stderr lines and SIGINT are what is tested.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.hub import DEFAULT_TIMEOUT, current_timeout, hub_timeout, resolve_model

from .hostile_hub import REPO, HostileHub, cli_env, ispan, make_model, wait_for

# from the stalled request to the command's end: the 2 s timeout plus the error's way out (the
# start-up before it, importing torch, is not the timeout's and varies with the machine's load)
AFTER_STALL_S = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("served") / "m")


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# the same guard answers every step: two stalls run by default, the rest with -m slow
_SLOW = pytest.mark.slow
STALLS = [
    # (where, behaviour, what the error says)
    ("info", "hang", "did not answer within 2 s"),
    pytest.param("info", "trickle", "sent no full answer within 2 s", marks=_SLOW),
    pytest.param("tree", "trickle-body", "sent less than 1 KiB in 2 s", marks=_SLOW),
    pytest.param("head", "hang", "did not answer within 2 s", marks=_SLOW),
    pytest.param("file", "hang", "did not answer within 2 s", marks=_SLOW),
    ("file", "trickle-body", "sent less than 1 KiB in 2 s"),
]


@pytest.mark.parametrize(("where", "behaviour", "said"), STALLS, ids=lambda v: str(v))
def test_a_stalled_hub_ends_the_command_within_the_timeout(
    model_dir, tmp_path, where, behaviour, said
):
    with HostileHub(model_dir, behaviour={where: behaviour}) as hub:
        env = cli_env(hub.endpoint, tmp_path / "home")
        code, out, err, took = ispan("models", "info", REPO, "--timeout", "2", env=env)
        ended = time.monotonic()
        assert hub.saw(where)  # the stall was reached, not skipped
    after = ended - hub.first_seen[where]
    assert after < AFTER_STALL_S, f"ended {after:.1f} s after the stalled request ({took:.1f} s)"
    line = _one_error_line(err)
    assert code == 1 and out == ""
    assert said in line and "--timeout 2" in line and "raise --timeout" in line


@pytest.mark.parametrize(
    "command",
    [
        ["classify", "samples/demo.mp4"],
        pytest.param(["visualize", "samples/demo.mp4"], marks=_SLOW),
        pytest.param(["export", "--onnx", "--no-verify"], marks=_SLOW),
        pytest.param(
            ["benchmark", "--runtime", "torch", "--count", "1", "--seconds", "0.5"], marks=_SLOW
        ),
    ],
    ids=lambda c: c[0],
)
def test_every_command_that_loads_a_model_takes_the_timeout(model_dir, tmp_path, command):
    with HostileHub(model_dir, behaviour={"info": "hang"}) as hub:
        env = cli_env(hub.endpoint, tmp_path / "home")
        code, _, err, took = ispan(
            *command, "--model", REPO, "--timeout", "2", env=env, timeout=120
        )
        ended = time.monotonic()
    after = ended - hub.first_seen["info"]
    assert after < AFTER_STALL_S, f"ended {after:.1f} s after the stalled request ({took:.1f} s)"
    assert code == 1
    assert "did not answer within 2 s" in err.splitlines()[-1]


@pytest.mark.parametrize(
    ("where", "behaviour"),
    [("info", "hang"), ("file", "trickle-body")],
    ids=["waiting-for-an-answer", "downloading-in-threads"],
)
def test_ctrl_c_ends_a_hub_download_at_once(model_dir, tmp_path, where, behaviour):
    # --timeout 60: only the Ctrl-C can end it within the bound
    with HostileHub(model_dir, behaviour={where: behaviour}) as hub:
        env = cli_env(hub.endpoint, tmp_path / "home")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ispan_cli", "models", "info", REPO, "--timeout", "60"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            assert wait_for(lambda: hub.saw(where), timeout=60), "the download never started"
            time.sleep(0.5)  # in the middle of it
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    took = time.monotonic() - sent
    assert proc.returncode == 130
    assert took < 5, f"took {took:.1f} s after Ctrl-C"
    assert err.splitlines() == ["interrupted"] and out == ""


def test_the_timeout_is_in_every_network_commands_help(tmp_path):
    env = cli_env("http://127.0.0.1:9", tmp_path / "home", COLUMNS="200")
    for command in (
        ["classify"],
        ["visualize"],
        ["export"],
        ["benchmark"],
        ["models", "info"],
        ["hub", "push"],
    ):
        code, out, err, _ = ispan(*command, "--help", env=env)
        assert code == 0, err
        assert "--timeout" in out and f"Default: {DEFAULT_TIMEOUT:g}" in out, command


def test_hub_timeout_sets_the_default_of_library_calls_and_restores_it(model_dir, tmp_path):
    assert current_timeout() == DEFAULT_TIMEOUT == 30
    with HostileHub(model_dir, behaviour={"info": "hang"}) as hub:
        start = time.monotonic()
        with hub_timeout(1), pytest.raises(ISpanError, match="within 1 s"):
            assert current_timeout() == 1
            # no timeout= here: a library call deep inside a command gets it this way
            resolve_model(REPO, cache_dir=tmp_path, endpoint=hub.endpoint, token=False)
        assert time.monotonic() - start < 10
    assert current_timeout() == DEFAULT_TIMEOUT


def test_huggingface_hub_is_left_as_it_was(model_dir, tmp_path):
    # the guarded client, settings and Ctrl-C handler last for one operation only
    from huggingface_hub import constants
    from huggingface_hub.utils import _http as hf_http

    before = (
        hf_http._GLOBAL_CLIENT_FACTORY,
        constants.HF_HUB_DOWNLOAD_TIMEOUT,
        constants.HF_HUB_DISABLE_XET,
        signal.getsignal(signal.SIGINT),
    )
    seen = {}
    with HostileHub(model_dir) as hub:

        def progress(done, total):  # called during the download: inside the operation
            seen.setdefault("download_timeout", constants.HF_HUB_DOWNLOAD_TIMEOUT)

        resolve_model(
            REPO,
            cache_dir=tmp_path,
            endpoint=hub.endpoint,
            token=False,
            offline=False,
            timeout=7,
            progress=progress,
        )
    assert seen == {"download_timeout": 7}  # huggingface_hub's own setting, passed through
    after = (
        hf_http._GLOBAL_CLIENT_FACTORY,
        constants.HF_HUB_DOWNLOAD_TIMEOUT,
        constants.HF_HUB_DISABLE_XET,
        signal.getsignal(signal.SIGINT),
    )
    assert after == before
