"""Real loopback HTTP servers for tests: a plain file server with fault injection, and a
minimal Hugging Face Hub.

Both are threaded :mod:`http.server` instances bound to ``127.0.0.1`` on a free port, started in
the constructor and stopped by :meth:`close` (or by leaving the ``with`` block).
"""
from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

__all__ = ["FileServer", "HubServer", "git_blob_sha1"]

FAULTS = ("404", "500", "truncate", "reset", "slow")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Injected faults (reset, truncate) and clients that hang up make the handler fail while
        # finishing the response; that is expected here, so do not print tracebacks.
        pass


class _Quiet(BaseHTTPRequestHandler):
    """Handler base that does not print a log line per request."""

    protocol_version = "HTTP/1.0"
    server_version = "zoo-test-server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass


class _Base:
    """Start/stop plumbing shared by the servers."""

    def _start(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._lock = threading.Lock()
        self.requests: list[str] = []
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._closed = False

    def _record(self, entry: str) -> None:
        with self._lock:
            self.requests.append(entry)

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if not self._closed:
            self._closed = True
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    def __enter__(self):  # noqa: ANN204 - returns the concrete subclass
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# FileServer


class _FileHandler(_Quiet):
    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        server: FileServer = self.server.owner  # type: ignore[attr-defined]
        path = unquote(urlsplit(self.path).path).lstrip("/")
        server._record(path)
        body, fault = server._lookup(path)
        if body is None or fault == "404":
            self._simple(404, b"Not Found\n", head)
            return
        if fault == "500":
            self._simple(500, b"Internal Server Error\n", head)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        if fault == "truncate":
            # Full Content-Length was announced; send half, then close cleanly (FIN).
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
        elif fault == "reset":
            # Send part of the body, then abort the connection with a TCP RST.
            self.wfile.write(body[: max(1, len(body) // 3)])
            self.wfile.flush()
            time.sleep(0.05)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif fault == "slow":
            step = max(1, len(body) // 20)
            for start in range(0, len(body), step):
                self.wfile.write(body[start : start + step])
                self.wfile.flush()
                time.sleep(server.slow_delay)
        else:
            self.wfile.write(body)

    def _simple(self, status: int, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class FileServer(_Base):
    """Serve ``{path: bytes}`` over HTTP on 127.0.0.1, with per-path fault injection.

    Faults (see :meth:`set_fault`): ``"404"``, ``"500"``, ``"truncate"`` (announces the full
    ``Content-Length``, sends half the body, closes), ``"reset"`` (sends about a third, then
    resets the TCP connection), ``"slow"`` (sends the body in 20 chunks with ``slow_delay``
    seconds between them). ``requests`` lists the paths of every HEAD/GET received, in order.
    """

    def __init__(self, files: dict[str, bytes], *, slow_delay: float = 0.05) -> None:
        self.files: dict[str, bytes] = {k.lstrip("/"): v for k, v in files.items()}
        self.faults: dict[str, str] = {}
        self.slow_delay = slow_delay
        self._start(_FileHandler)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return f"{self.base_url}/{quote(path.lstrip('/'))}"

    def set_file(self, path: str, data: bytes) -> None:
        """Add or replace the bytes served at ``path``."""
        with self._lock:
            self.files[path.lstrip("/")] = data

    def set_fault(self, path: str, fault: str | None) -> None:
        """Inject ``fault`` (one of ``404 500 truncate reset slow``) on ``path``; ``None`` clears it."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {FAULTS} or None")
        with self._lock:
            if fault is None:
                self.faults.pop(path.lstrip("/"), None)
            else:
                self.faults[path.lstrip("/")] = fault

    def _lookup(self, path: str) -> tuple[bytes | None, str | None]:
        with self._lock:
            return self.files.get(path), self.faults.get(path)


# ---------------------------------------------------------------------------------------------
# HubServer


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, which the Hub uses as ETag of non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _HubHandler(_Quiet):
    # ---- helpers
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str | None, message: str, head: bool = False, **extra: str) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message, **extra}
        if code is not None:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    @property
    def hub(self) -> "HubServer":
        return self.server.owner  # type: ignore[attr-defined]

    def _authorized(self) -> bool:
        token = self.hub.token
        if token is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {token}":
            return True
        self._error(401, None, "Invalid credentials in Authorization header")
        return False

    # ---- GET / HEAD: /{repo_id}/resolve/{revision}/{filename}
    def do_HEAD(self) -> None:
        self._resolve(head=True)

    def do_GET(self) -> None:
        self._resolve(head=False)

    def _resolve(self, head: bool) -> None:
        raw = urlsplit(self.path).path
        self.hub._record(f"{self.command} {unquote(raw)}")
        marker = "/resolve/"
        if marker not in raw:
            self._error(404, None, "Not Found", head=head)
            return
        repo_part, rest = raw.split(marker, 1)
        repo_id = unquote(repo_part.lstrip("/"))
        if "/" not in rest:
            self._error(404, "EntryNotFound", "Entry not found", head=head)
            return
        revision_q, filename_q = rest.split("/", 1)
        revision, filename = unquote(revision_q), unquote(filename_q)
        with self.hub._lock:
            repo = self.hub._repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found", head=head)
                return
            sha = repo["refs"].get(revision) or (revision if revision in repo["commits"] else None)
            if sha is None:
                self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, head=head)
                return
            data = repo["commits"][sha].get(filename)
        if data is None:
            self._error(404, "EntryNotFound", f"{filename} does not exist on \"{revision}\"", head=head,
                        **{"X-Repo-Commit": sha})
            return
        self._send(
            200,
            data,
            {
                "Content-Type": "application/octet-stream",
                "X-Repo-Commit": sha,
                "ETag": f'"{git_blob_sha1(data)}"',
            },
            head=head,
        )

    # ---- POST: repo creation, preupload, commit, branch, validate-yaml
    def do_POST(self) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub._record(f"POST {path}")
        body = self._body()
        if not self._authorized():
            return
        if path == "/api/repos/create":
            self._create_repo(json.loads(body or b"{}"))
        elif path == "/api/validate-yaml":
            self._json(200, {"errors": [], "warnings": []})
        elif path.startswith("/api/models/"):
            self._repo_api(path[len("/api/models/") :], body)
        else:
            self._error(404, None, f"Unsupported endpoint {path}")

    def _create_repo(self, payload: dict[str, Any]) -> None:
        org, name = payload.get("organization"), payload.get("name")
        if payload.get("type") not in (None, "model"):
            self._error(400, None, "HubServer only hosts model repos")
            return
        repo_id = f"{org}/{name}" if org else str(name)
        url = f"{self.hub.endpoint}/{repo_id}"
        with self.hub._lock:
            if repo_id in self.hub._repos:
                self._json(409, {"error": "You already created this model repo", "url": url})
                return
            self.hub._add_repo(repo_id, {}, private=payload.get("visibility") == "private")
        self._json(200, {"url": url, "name": repo_id})

    def _repo_api(self, rest: str, body: bytes) -> None:
        for action in ("/preupload/", "/commit/", "/branch/"):
            if action in rest:
                repo_id, revision = rest.split(action, 1)
                break
        else:
            self._error(404, None, f"Unsupported endpoint /api/models/{rest}")
            return
        with self.hub._lock:
            repo = self.hub._repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return
            if action == "/branch/":
                start = json.loads(body or b"{}").get("startingPoint") or "main"
                start_sha = repo["refs"].get(start) or (start if start in repo["commits"] else None)
                if revision in repo["refs"]:
                    self._error(409, None, "Reference already exists")
                elif start_sha is None:
                    self._error(404, "RevisionNotFound", "Invalid rev id: " + start)
                else:
                    repo["refs"][revision] = start_sha
                    self._json(200, {})
                return
            if revision not in repo["refs"]:
                self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
                return
            if action == "/preupload/":
                files = json.loads(body)["files"]
                self._json(
                    200,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                            for f in files
                        ],
                        "commitOid": repo["refs"][revision],
                    },
                )
                return
            # commit: ndjson lines {"key": "header"|"file"|"deletedFile"|"deletedFolder"|"lfsFile", "value": ...}
            parent = repo["refs"][revision]
            files = dict(repo["commits"][parent])
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    expected_parent = value.get("parentCommit")
                    if expected_parent and not parent.startswith(expected_parent):
                        self._error(412, None, "A commit has happened since. Please refresh and try again.")
                        return
                elif key == "file":
                    content = value["content"]
                    files[value["path"]] = (
                        base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                    )
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: d for p, d in files.items() if not p.startswith(prefix)}
                else:
                    self._error(400, None, f"HubServer does not support commit operation {key!r}")
                    return
            sha = hashlib.sha1(parent.encode() + body).hexdigest()
            repo["commits"][sha] = files
            repo["refs"][revision] = sha
        self._json(
            200,
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{sha}",
                "pullRequestUrl": None,
            },
        )


class HubServer(_Base):
    """Just enough of the Hugging Face Hub for ``huggingface_hub`` download and upload calls.

    ``repos`` maps ``repo_id`` to ``{filename: bytes}``; every repo starts with one commit,
    ``revision_sha``, that branch ``main`` points to. Served:

    * ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` (revision: a branch or a known
      commit sha) with ``X-Repo-Commit``, ``ETag`` (git blob sha1) and ``Content-Length``;
      404 with ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``;
    * ``POST /api/repos/create``, ``/api/models/{repo_id}/preupload/{rev}`` (every file
      "regular", never LFS/xet), ``/api/models/{repo_id}/commit/{rev}`` (ndjson),
      ``/api/models/{repo_id}/branch/{branch}`` and ``/api/validate-yaml``.

    With ``token`` set, POSTs require ``Authorization: Bearer <token>`` (401 otherwise).
    ``requests`` lists ``"METHOD /path"`` for every request received.
    """

    def __init__(
        self,
        repos: dict[str, dict[str, bytes]],
        revision_sha: str = "0123456789abcdef0123456789abcdef01234567",
        *,
        token: str | None = None,
    ) -> None:
        if len(revision_sha) != 40 or any(c not in "0123456789abcdef" for c in revision_sha):
            raise ValueError("revision_sha must be 40 lowercase hex digits")
        self.revision_sha = revision_sha
        self.token = token
        self._repos: dict[str, dict[str, Any]] = {}
        self._start(_HubHandler)
        for repo_id, files in repos.items():
            self._add_repo(repo_id, files)

    def _add_repo(self, repo_id: str, files: dict[str, bytes], private: bool = False) -> None:
        self._repos[repo_id] = {
            "refs": {"main": self.revision_sha},
            "commits": {self.revision_sha: dict(files)},
            "private": private,
        }

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``, the value for ``HF_ENDPOINT``."""
        return f"http://127.0.0.1:{self.port}"

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Snapshot of a repo's files at ``revision`` (branch or commit sha)."""
        with self._lock:
            repo = self._repos[repo_id]
            sha = repo["refs"].get(revision, revision)
            return dict(repo["commits"][sha])

    def head(self, repo_id: str, branch: str = "main") -> str:
        """Commit sha that ``branch`` of ``repo_id`` points to."""
        with self._lock:
            return self._repos[repo_id]["refs"][branch]

    def set_file(self, repo_id: str, filename: str, data: bytes) -> None:
        """Change a file on ``main`` in place (same commit sha), e.g. to simulate a corrupted mirror."""
        with self._lock:
            repo = self._repos[repo_id]
            repo["commits"][repo["refs"]["main"]][filename] = data
