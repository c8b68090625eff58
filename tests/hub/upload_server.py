"""The Hub's write API (create repo, create branch, preupload, commit) over real HTTP on
127.0.0.1, committing into the git repos that olah serves.

olah is read-only (it answers POST /api/repos/create with 405), so uploads are checked against
this small server instead: the client is the real huggingface_hub, the protocol is the Hub's
(JSON requests, NDJSON commits with base64 "regular" files), and the commit lands in a real git
repository (olah's mirror folder), where the test reads the committed bytes back.

olah opens a mirror's git repository afresh on every request, so a commit made here (in a new
repo or a new branch, while olah runs) can be pulled straight back through olah: the round trip
of tests/hub/test_push.py. Every file goes up as "regular" (base64 inside the commit); the Hub
would take model.safetensors through LFS/Xet, which this server does not implement.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def git(repo: Path, *args: str) -> str:
    """Runs git in ``repo`` (as a fixed test identity) and returns its stripped stdout."""
    who = ["-c", "user.name=hub", "-c", "user.email=hub@localhost"]
    done = subprocess.run(
        ["git", "-C", str(repo), *who, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _has_ref(repo: Path, ref: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
    )
    return done.returncode == 0


def _error(message: str, status: int) -> JSONResponse:
    # the Hub's error body: huggingface_hub shows "error" in its exception message
    return JSONResponse({"error": message}, status_code=status)


def is_private(body: dict) -> bool:
    """The visibility a create-repo request asks for, whatever the client's version spells:
    recent huggingface_hub (2.x here) sends ``"visibility": "private"``, old ones (the 0.24
    floor of pyproject.toml) ``"private": true``."""
    if "visibility" in body:
        return body["visibility"] == "private"
    return bool(body.get("private"))


def make_app(
    mirrors: Path, endpoint: str, requests: list[str], created: list[dict] | None = None
) -> Starlette:
    """``requests``: one line per call; ``created``: each create-repo request's JSON body, with
    ``"_private"`` (the visibility it asked for, see ``is_private``) added."""

    def repo_dir(org: str, name: str) -> Path:
        return mirrors / "models" / org / name

    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        requests.append(f"create {body}")
        if created is not None:
            created.append({**body, "_private": is_private(body)})
        org, name = body.get("organization"), body["name"]
        if org is None and "/" in name:
            org, name = name.split("/")
        repo = repo_dir(org, name)
        if repo.exists():
            return JSONResponse(
                {"error": "You already created this model repo", "url": f"{endpoint}/{org}/{name}"},
                status_code=409,
            )
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "commit", "-q", "--allow-empty", "-m", "initial commit")
        return JSONResponse({"url": f"{endpoint}/{org}/{name}"})

    async def branch(request: Request) -> JSONResponse:
        p = request.path_params
        requests.append(f"branch {p['branch']}")
        repo = repo_dir(p["org"], p["name"])
        if not repo.is_dir():
            return _error("Repository not found", 404)
        if _has_ref(repo, f"refs/heads/{p['branch']}"):
            # as the Hub: 409, which create_branch(exist_ok=True) accepts
            return _error("Reference already exists", 409)
        body = await request.json() if await request.body() else {}
        start = body.get("startingPoint") or "main"  # the Hub branches off the default branch
        if not _has_ref(repo, start):
            return _error(f"Invalid rev id: {start}", 404)
        git(repo, "branch", p["branch"], start)
        return JSONResponse({})

    async def preupload(request: Request) -> JSONResponse:
        body = await request.json()
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
            for f in body["files"]
        ]
        return JSONResponse({"files": files})

    async def commit(request: Request) -> JSONResponse:
        p = request.path_params
        repo = repo_dir(p["org"], p["name"])
        lines = [json.loads(x) for x in (await request.body()).splitlines() if x.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        files = [x["value"] for x in lines if x["key"] == "file"]
        requests.append(f"commit {p['revision']} {sorted(f['path'] for f in files)}")
        if not repo.is_dir():
            return _error("Repository not found", 404)
        if not _has_ref(repo, f"refs/heads/{p['revision']}"):
            return _error(f"Invalid rev id: {p['revision']}", 404)
        git(repo, "checkout", "-q", p["revision"])
        for f in files:
            (repo / f["path"]).write_bytes(base64.b64decode(f["content"]))
        git(repo, "add", "-A")
        # --allow-empty: a push of unchanged files still makes a commit (the client only skips
        # unchanged files when preupload reports their "oid", which this server does not)
        git(repo, "commit", "-q", "--allow-empty", "-m", header["summary"])
        oid = git(repo, "rev-parse", "HEAD")
        git(repo, "checkout", "-q", "main")
        url = f"{endpoint}/{p['org']}/{p['name']}/commit/{oid}"
        return JSONResponse({"commitUrl": url, "commitOid": oid, "pullRequestUrl": None})

    async def validate_yaml(request: Request) -> JSONResponse:
        body = await request.json()
        requests.append("validate-yaml")
        ok = body["content"].startswith("---\n")  # the card's metadata block
        return JSONResponse({"warnings": [] if ok else [{"message": "empty metadata"}]})

    base = "/api/models/{org}/{name}"
    return Starlette(
        routes=[
            Route("/api/repos/create", create, methods=["POST"]),
            Route("/api/validate-yaml", validate_yaml, methods=["POST"]),
            Route(base + "/branch/{branch:path}", branch, methods=["POST"]),
            Route(base + "/preupload/{revision:path}", preupload, methods=["POST"]),
            Route(base + "/commit/{revision:path}", commit, methods=["POST"]),
        ]
    )


class UploadServer:
    """Runs the app with uvicorn in a thread; ``requests`` records what was asked, ``created``
    the create-repo requests' bodies."""

    def __init__(self, mirrors: Path, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.requests: list[str] = []
        self.created: list[dict] = []  # create-repo bodies, "_private" added (see make_app)
        config = uvicorn.Config(
            make_app(mirrors, self.endpoint, self.requests, self.created),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UploadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
