"""The HTTP client ispan lends huggingface_hub for one Hub operation (a download or a push): every
request ends, and the server's answers are checked before huggingface_hub acts on them.

Why: huggingface_hub builds cache paths from what the server says, a revision's commit
(``snapshots/<commit>``, ``trees/<commit>.json``), the ``X-Repo-Commit`` header and a file's ETag
(``blobs/<etag>``); a server answering ``../../../../tmp/x`` makes it write ``/tmp/x.json``. And its
default client has no timeout on some calls, retries after a timeout, and resumes a download that
brought one byte as if it were progress, so a Hub that trickles never times out.

What this client does, for the duration of ``guarded_hub(timeout)``:

- every commit the server reports must be 40 hexadecimal characters, every ETag a plain file
  name, and every oid of a tree listing a hash; otherwise the answer is refused before
  huggingface_hub sees it (``HubAnswerRefused``);
- connecting, and waiting for an answer, may take ``timeout`` seconds each (socket timeouts,
  and a watchdog for an answer whose headers trickle in); an answer's body must bring
  ``MIN_BYTES`` in every ``timeout`` seconds. A request past those limits is ended by shutting
  its socket down;
- after a stall or a refusal, every further request of the operation fails at once
  (``HubStalled``) instead of being retried; Ctrl-C ends the requests in flight the same way,
  so that huggingface_hub's download threads stop at once.

Xet transfers go through hf_xet's own connections, outside this client, so they are switched off
for the operation: files come over plain HTTP, where the limits hold.

With a huggingface_hub whose client is not httpx-based (before 1.0), only the timeouts are passed
to it; the checks of the result in ``ispan_cli.hub`` still apply. Imports nothing heavy until used.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass

from ispan_cli.terminal import visible

# An answer must bring at least this many bytes in every `timeout` seconds (1 KiB in 30 s by
# default): a transfer slower than that is a stall, whatever a per-read timeout says.
MIN_BYTES = 1024
# The watchdog lets the socket's own timeout fire first when nothing at all arrives, so that
# huggingface_hub sees a plain timeout (and can fall back to the cache).
_GRACE_S = 1.0
_TICK_S = 0.1

COMMIT = re.compile(r"[0-9a-f]{40}")  # a full git commit hash, as the Hub writes it
_SHA256 = re.compile(r"[0-9a-f]{64}")
# An ETag becomes a file name in blobs/: letters, digits, '_', '-', '.', not starting with '.'
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")


class HubAnswerRefused(Exception):
    """An answer that would have made huggingface_hub write outside its cache."""


class HubStalled(Exception):
    """A request of an operation that already stalled, was refused or was interrupted."""


@dataclass(frozen=True)
class Failure:
    """Why an operation stopped: kind is ``refused``, ``stalled`` or ``interrupted``."""

    kind: str
    detail: str  # e.g. "did not answer within 2 s"; for refused, what was refused


def show(value: object, limit: int = 60) -> str:
    """A server-provided value for a message: quoted, escaped, and cut to ``limit`` characters."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def printable(text: object, limit: int = 200) -> str:
    """Server text for a message or a table: control characters (terminal escape sequences)
    made visible (``ispan_cli.terminal``), and cut to ``limit`` characters."""
    return visible(text, limit)


class HubGuard:
    """The state of one guarded operation; see the module docstring."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.failure: Failure | None = None
        self._lock = threading.Lock()
        self._flights: set[_Flight] = set()
        self._stop = threading.Event()

    def fail(self, kind: str, detail: str) -> None:
        """Records the first failure and ends every request in flight."""
        with self._lock:
            if self.failure is None:
                self.failure = Failure(kind, detail)
            flights = list(self._flights)
        for flight in flights:
            flight.kill()

    def cancel(self) -> None:
        """Ctrl-C: ends every request in flight, and refuses new ones."""
        self.fail("interrupted", "interrupted")

    # -- hooks of the httpx client -----------------------------------------------------------

    def on_request(self, request) -> None:
        if self.failure is not None:
            raise HubStalled(self.failure.detail)
        # huggingface_hub's own limit where it set a shorter one, else ours (it sets none on
        # some calls, and 60 s on a retry)
        asked = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            key: min(self.timeout, asked.get(key) or self.timeout)
            for key in ("connect", "read", "write", "pool")
        }
        flight = _Flight(self)
        request.extensions["trace"] = flight.trace
        request.extensions["ispan_flight"] = flight
        with self._lock:
            self._flights.add(flight)

    def on_response(self, response, httpx) -> None:
        flight = response.request.extensions.get("ispan_flight")
        if flight is None:  # not a request of ours
            return
        flight.enter("body")
        response.stream = _counted_stream(httpx, response.stream, flight)
        problem = _check_headers(response)
        if problem is None and _is_api_json(response):
            response.read()  # small: API answers; downloads are never JSON
            problem = _check_json(response)
        if problem is not None:
            self.fail("refused", problem)
            raise HubAnswerRefused(problem)

    def _done(self, flight: _Flight) -> None:
        with self._lock:
            self._flights.discard(flight)

    # -- watchdog ------------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(_TICK_S):
            now = time.monotonic()
            with self._lock:
                flights = list(self._flights)
            for flight in flights:
                reason = flight.overdue(now)
                if reason is not None:
                    self.fail("stalled", reason)


class _Flight:
    """One request in flight, as the watchdog sees it."""

    def __init__(self, guard: HubGuard) -> None:
        self.guard = guard
        self.sock: socket.socket | None = None
        self.phase = "connect"  # connect -> send -> answer -> body
        self.since = time.monotonic()
        self.window_bytes = 0
        self.killed = False

    def enter(self, phase: str) -> None:
        self.phase, self.since, self.window_bytes = phase, time.monotonic(), 0

    def trace(self, name: str, info: dict) -> None:
        """httpcore's trace callback: learns the socket and the phase of the request."""
        if name.endswith(".complete"):
            get = getattr(info.get("return_value"), "get_extra_info", None)
            sock = get("socket") if callable(get) else None
            if isinstance(sock, socket.socket):  # TLS: the wrapped socket replaces the raw one
                self.sock = sock
        if name == "http11.send_request_headers.started":
            self.enter("send")
        elif name == "http11.receive_response_headers.started":
            self.enter("answer")
        elif name.endswith(".failed"):
            self.done()  # the request is over: the watchdog must not judge it later
            exc = info.get("exception")
            if self.killed:  # we ended it: say so, rather than "connection closed"
                raise HubStalled(_detail(self.guard)) from exc
            if type(exc).__name__ in ("ConnectTimeout", "ReadTimeout", "WriteTimeout"):
                # the socket's own timeout: later requests of the operation fail at once
                self.guard.fail("stalled", _timeout_detail(type(exc).__name__, self.guard))

    def overdue(self, now: float) -> str | None:
        t = self.guard.timeout
        elapsed = now - self.since
        if self.phase in ("connect", "answer") and elapsed > t + _GRACE_S:
            what = "could not be reached" if self.phase == "connect" else "sent no full answer"
            return f"{what} within {t:g} s"
        if self.phase == "body" and elapsed >= t:
            if self.window_bytes < MIN_BYTES:
                return f"sent less than {MIN_BYTES // 1024} KiB in {t:g} s"
            self.enter("body")
        return None  # "send": the socket's write timeout bounds each write of a large upload

    def kill(self) -> None:
        self.killed = True
        if self.sock is not None:
            # the plain socket's shutdown: an SSLSocket's own would drop its TLS state first
            with suppress(OSError):
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def done(self) -> None:
        self.guard._done(self)


def _detail(guard: HubGuard) -> str:
    return guard.failure.detail if guard.failure else "stalled"


def _timeout_detail(name: str, guard: HubGuard) -> str:
    t = guard.timeout
    if name == "ConnectTimeout":
        return f"could not be reached within {t:g} s"
    if name == "WriteTimeout":
        return f"took no data for {t:g} s"
    return f"did not answer within {t:g} s"


def _counted_stream(httpx, inner, flight: _Flight):
    class CountedStream(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            try:
                for chunk in inner:
                    flight.window_bytes += len(chunk)
                    yield chunk
            except Exception as exc:
                if flight.killed:
                    raise HubStalled(_detail(flight.guard)) from exc
                if type(exc).__name__ == "ReadTimeout":
                    flight.guard.fail("stalled", _timeout_detail("ReadTimeout", flight.guard))
                raise

        def close(self) -> None:
            flight.done()
            inner.close()

    return CountedStream()


def _check_headers(response) -> str | None:
    commit = response.headers.get("X-Repo-Commit")
    if commit is not None and not COMMIT.fullmatch(commit):
        return f"commit {show(commit)} (X-Repo-Commit; a commit is 40 hexadecimal characters)"
    if response.request.method == "HEAD":  # file metadata: its ETag names the blob file
        for header in ("X-Linked-Etag", "ETag"):
            value = response.headers.get(header)
            # normalised exactly as huggingface_hub does before using it as a file name
            name = None if value is None else value.lstrip("W/").strip('"')
            if name is not None and not _FILE_NAME.fullmatch(name):
                return f"ETag {show(value)} (a file's ETag must be a plain hash)"
    return None


def _is_api_json(response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return (
        response.status_code == 200
        and "/api/" in response.request.url.path
        and "json" in content_type
    )


def _check_json(response) -> str | None:
    try:
        doc = response.json()
    except ValueError:
        return None  # huggingface_hub refuses it itself
    if isinstance(doc, dict):  # repo info: its "sha" is the commit of the revision asked for
        sha = doc.get("sha")
        if sha is not None and not (isinstance(sha, str) and COMMIT.fullmatch(sha)):
            return f"commit {show(sha)} (a commit is 40 hexadecimal characters)"
    elif isinstance(doc, list):  # tree listing: oids become blob file names
        for entry in doc:
            if not isinstance(entry, dict):
                continue
            oid = entry.get("oid")
            if oid is not None and not (isinstance(oid, str) and COMMIT.fullmatch(oid)):
                return f"file id {show(oid)} (a git object id is 40 hexadecimal characters)"
            lfs = entry.get("lfs")
            lfs_oid = lfs.get("oid") if isinstance(lfs, dict) else None
            if lfs_oid is not None and not (
                isinstance(lfs_oid, str) and _SHA256.fullmatch(lfs_oid)
            ):
                return f"LFS id {show(lfs_oid)} (a sha256 is 64 hexadecimal characters)"
    return None


_active: HubGuard | None = None


@contextmanager
def guarded_hub(timeout: float) -> Iterator[HubGuard]:
    """huggingface_hub calls inside the block go through a guarded client (module docstring).

    Re-entrant: an inner block joins the outer one's guard. One operation at a time per process
    (the client and huggingface_hub's settings are process-wide), as in a command.
    """
    global _active
    if _active is not None:
        yield _active
        return
    guard = HubGuard(timeout)
    with ExitStack() as stack:
        stack.enter_context(_hf_settings(timeout))
        stack.enter_context(_guarded_client(guard))
        stack.enter_context(_watchdog(guard))
        stack.enter_context(_sigint_cancels(guard))
        _active = guard
        stack.callback(_clear_active)
        yield guard


def _clear_active() -> None:
    global _active
    _active = None


@contextmanager
def _hf_settings(timeout: float) -> Iterator[None]:
    """huggingface_hub's own timeout settings; no Xet transfers (see the module docstring); no
    telemetry, which would fetch a registry from HF_ENDPOINT (huggingface.co when a test or a
    caller passes its own endpoint) before the first request, outside the operation; and its
    warnings (e.g. "trying to resume download") kept off the terminal: the error says it all."""
    from huggingface_hub import constants
    from huggingface_hub.utils import logging as hf_logging  # importing it sets the level

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity(max(level, hf_logging.ERROR))
    saved = {}
    wanted = {
        "HF_HUB_ETAG_TIMEOUT": timeout,
        "HF_HUB_DOWNLOAD_TIMEOUT": timeout,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for name, value in wanted.items():
        if hasattr(constants, name):
            saved[name] = getattr(constants, name)
            setattr(constants, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(constants, name, value)
        hf_logging.set_verbosity(level)


@contextmanager
def _guarded_client(guard: HubGuard) -> Iterator[None]:
    from huggingface_hub.utils import _http as hf_http

    httpx = getattr(hf_http, "httpx2", None) or getattr(hf_http, "httpx", None)
    set_factory = getattr(hf_http, "set_client_factory", None)
    default_factory = getattr(hf_http, "default_client_factory", None)
    if httpx is None or set_factory is None or default_factory is None:
        yield  # an older, requests-based huggingface_hub: timeouts only
        return
    hooks = _hf_hooks(hf_http, default_factory)

    def on_response(response) -> None:
        guard.on_response(response, httpx)

    def factory():
        return httpx.Client(
            event_hooks={
                "request": [*hooks.get("request", []), guard.on_request],
                "response": [*hooks.get("response", []), on_response],
            },
            follow_redirects=True,
            timeout=guard.timeout,
            verify=_ssl_context(httpx),
            # a fresh connection per request, so that the watchdog knows each request's socket
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    previous = getattr(hf_http, "_GLOBAL_CLIENT_FACTORY", default_factory)
    set_factory(factory)
    try:
        yield
    finally:
        set_factory(previous)  # also closes our client


def _hf_hooks(hf_http, default_factory) -> dict[str, list]:
    """huggingface_hub's own event hooks (offline mode, request ids)."""
    hook = getattr(hf_http, "hf_request_event_hook", None)
    if callable(hook):
        return {"request": [hook], "response": []}
    base = default_factory()  # another version: read them off its own client
    hooks = {kind: list(found) for kind, found in base.event_hooks.items()}
    base.close()
    return hooks


_ssl_contexts: dict = {}


def _ssl_context(httpx):
    # made once per process: loading the CA bundle takes 0.1 s, and every operation needs one
    if httpx not in _ssl_contexts:
        _ssl_contexts[httpx] = httpx.create_ssl_context()
    return _ssl_contexts[httpx]


@contextmanager
def _watchdog(guard: HubGuard) -> Iterator[None]:
    thread = threading.Thread(target=guard._watch, name="ispan-hub-watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        guard._stop.set()
        thread.join(timeout=1)


@contextmanager
def _sigint_cancels(guard: HubGuard) -> Iterator[None]:
    """Ctrl-C ends the requests in flight before the KeyboardInterrupt unwinds: otherwise
    huggingface_hub's thread pool waits, on the way out, for its downloads to finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN or SIG_DFL: leave them as they are
        yield
        return

    def on_sigint(signum, frame):
        guard.cancel()
        previous(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
