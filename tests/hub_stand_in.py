"""A stand-in for the Hugging Face Hub served on loopback, so tests drive huggingface_hub's real
download code without the network.

It answers the endpoints a download calls, with the Hub's status codes and headers:

- `GET  /api/models/{repo}/revision/{rev}`: repo info, whose `sha` is the commit to download;
- `GET  /api/models/{repo}/tree/{rev}`: the file list with sizes (huggingface_hub asks recursively);
- `HEAD /{repo}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag`, `Content-Length`;
- `GET  /{repo}/resolve/{rev}/{path}`: the bytes; `Range: bytes=N-` is answered with 206.

and the endpoints a push calls (`HfApi.create_repo`, `create_commit`, `upload_file`, `whoami`):

- `POST /api/repos/create`: a new empty repo (409 when it exists);
- `POST /api/validate-yaml`: a README's front matter must parse as YAML;
- `POST /api/{models|datasets}/{repo}/preupload/{rev}`: every file is "regular", so its bytes
  travel base64 in the commit itself: no LFS, no Xet (huggingface_hub uploads through Xet or
  LFS only files the Hub calls "lfs");
- `POST /api/{models|datasets}/{repo}/commit/{rev}`: the NDJSON commit (header, files, deletions;
  `parentCommit` checked, 412 when stale) lands in the repo's `files`;
- `GET  /api/whoami-v2`: the user of a token in `HubStandIn.users`.

Dataset repos (`repo_type="dataset"`) are served from `HubStandIn.datasets` under the same
endpoints with `datasets` in place of `models` (and `/datasets/{repo}/resolve/...`).

Errors carry the Hub's `X-Error-Code` (`RepoNotFound`, `GatedRepo`, `RevisionNotFound`,
`EntryNotFound`), which huggingface_hub turns into its exception types. No Xet headers are sent,
so huggingface_hub downloads over plain HTTP. A missing repo is 401 without a token, as the Hub
answers (it does not say whether a private repo exists); so is a private repo to anyone but a
user. A gated repo shows its info and file list to anyone but serves files only for a token in
`HubStandIn.tokens`. Writing needs a token in `HubStandIn.users` (401 otherwise).

Test hooks: `cut_once` ({path: n}: the first GET of that file sends n bytes, then closes the
connection), `hold` ({path: n}: the first GET sends n bytes, sets `holding` and waits for
`release`) and `requests` (every request, with its Range header and the body bytes sent).
New endpoints are a pattern and a method name in `_Handler.ROUTES`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

HOLD_SECONDS = 10.0  # a held GET gives up waiting after this (a test that forgot to release)


@dataclass
class StandInRepo:
    files: dict[str, bytes]
    gated: bool = False
    private: bool = False
    commits: list[str] = field(default_factory=list)  # the summaries of the commits pushed

    @property
    def commit(self) -> str:
        """A 40-hex commit id that changes with the content, as a real commit does."""
        digest = hashlib.sha1()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + self.files[path])
        return digest.hexdigest()


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None
    sent: int = 0  # body bytes sent


@dataclass
class HubStandIn:
    repos: dict[str, StandInRepo] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)  # tokens with access to gated repos
    cut_once: dict[str, int] = field(default_factory=dict)
    hold: dict[str, int] = field(default_factory=dict)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[Request] = field(default_factory=list)
    datasets: dict[str, StandInRepo] = field(default_factory=dict)  # dataset repos
    users: dict[str, str] = field(default_factory=dict)  # write tokens -> user names

    def add_repo(self, repo_id: str, files: dict[str, bytes], gated: bool = False,
                 repo_type: str = "model") -> StandInRepo:
        self.repos_of(repo_type)[repo_id] = StandInRepo(dict(files), gated)
        return self.repos_of(repo_type)[repo_id]

    def repos_of(self, repo_type: str) -> dict[str, StandInRepo]:
        """The repos of one type: "model" (or the URL's "models") or "dataset" ("datasets")."""
        return self.datasets if repo_type in ("dataset", "datasets") else self.repos

    def file_requests(self, path: str, method: str = "GET") -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.endswith("/" + path)]

    # --- serving ---------------------------------------------------------------------------

    def start(self) -> HubStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.stand_in = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def use(self, monkeypatch, cache_dir: Path) -> None:
        """Point huggingface_hub at this stand-in with an empty cache, online and without a token
        (nothing is written to the user's ~/.cache/huggingface). huggingface_hub reads HF_ENDPOINT,
        HF_HUB_CACHE, HF_HUB_OFFLINE and HF_HOME's paths into `constants` when it is imported, so
        the constants are patched, not the environment."""
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "ENDPOINT", self.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            self.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache_dir / "no-token-here"))
        monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(cache_dir / "harnesses.json"))
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN",
                     "HUGGING_FACE_HUB_TOKEN"):
            monkeypatch.delenv(name, raising=False)


def _etag(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _git_blob_id(content: bytes) -> str:
    """git's id of a file (huggingface_hub compares it to skip unchanged regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's client expects
    REPO = r"(?P<repo>[^/]+/[^/]+)"
    KIND = r"(?P<kind>models|datasets)"  # the API's word for the repo type
    FILE = rf"^/(?:(?P<kind>datasets)/)?{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"
    ROUTES = [  # (method, pattern, handler name)
        ("GET", re.compile(rf"^/api/{KIND}/{REPO}(?:/revision/(?P<rev>[^/]+))?$"), "repo_info"),
        ("GET", re.compile(rf"^/api/{KIND}/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
        ("HEAD", re.compile(FILE), "resolve"),
        ("GET", re.compile(FILE), "resolve"),
        ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
        ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
        ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
        ("POST", re.compile(rf"^/api/{KIND}/{REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
        ("POST", re.compile(rf"^/api/{KIND}/{REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ]

    @property
    def stand_in(self) -> HubStandIn:
        return self.server.stand_in

    def log_message(self, *args) -> None:  # quiet: the requests are in `stand_in.requests`
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        self.record = Request(method, path, self.headers.get("Range"),
                              self.headers.get("Authorization"))
        self.stand_in.requests.append(self.record)
        for route_method, pattern, name in self.ROUTES:
            match = pattern.match(path)
            if route_method == method and match:
                return getattr(self, name)(**{k: v for k, v in match.groupdict().items()})
        self._error(404, "EntryNotFound", f"no route {method} {path}")

    # --- answers -----------------------------------------------------------------------------

    def _token(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        return header[len("Bearer "):] if header.startswith("Bearer ") else None

    def _user(self) -> str | None:
        return self.stand_in.users.get(self._token() or "")

    def _repo(self, repo: str, rev: str | None, kind: str | None = "models") -> StandInRepo | None:
        """The repo at `rev`, or None once an error has been sent."""
        found = self.stand_in.repos_of(kind or "models").get(repo)
        if found is None or (found.private and self._user() is None):
            status = 404 if self._token() else 401
            self._error(status, "RepoNotFound", "Repository not found")
            return None
        if rev not in (None, "main", found.commit):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", found)
            return None
        return found

    def repo_info(self, kind: str, repo: str, rev: str | None = None) -> None:
        found = self._repo(repo, rev, kind)
        if found is not None:
            self._json({"id": repo, "sha": found.commit, "private": found.private,
                        "gated": "manual" if found.gated else False,
                        "siblings": [{"rfilename": path} for path in sorted(found.files)]})

    def tree(self, kind: str, repo: str, rev: str, path: str | None = None) -> None:
        found = self._repo(repo, rev, kind)
        if found is not None:
            prefix = f"{path.rstrip('/')}/" if path else ""
            self._json([{"type": "file", "path": name, "size": len(content),
                         "oid": hashlib.sha1(content).hexdigest()}
                        for name, content in sorted(found.files.items())
                        if name.startswith(prefix)])

    def resolve(self, repo: str, rev: str, path: str, kind: str | None = None) -> None:
        found = self._repo(repo, rev, kind)
        if found is None:
            return
        if found.gated and self._token() not in self.stand_in.tokens:
            if self._token() is None:
                self._error(401, "GatedRepo", f"Access to model {repo} is restricted. You must "
                            "have access to it and be authenticated to access it. Please log in.",
                            found)
            else:
                self._error(403, "GatedRepo", f"Access to model {repo} is restricted and you are "
                            "not in the authorized list.", found)
            return
        if path not in found.files:
            self._error(404, "EntryNotFound", f"{path} does not exist", found)
            return
        content = found.files[path]
        start = 0
        if self.command == "GET" and self.headers.get("Range"):
            start = int(re.match(r"bytes=(\d+)-$", self.headers["Range"]).group(1))
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", found.commit)
        self.send_header("ETag", f'"{_etag(content)}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.end_headers()
        if self.command == "GET":
            self._send_body(path, content[start:])

    # --- writing ------------------------------------------------------------------------

    def _writer(self) -> str | None:
        """The user a write request comes from, or None once a 401 has been sent."""
        user = self._user()
        if user is None:
            self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        return user

    def whoami(self) -> None:
        user = self._writer()
        if user is not None:
            self._json({"type": "user", "name": user, "orgs": [],
                        "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

    def create_repo(self) -> None:
        if self._writer() is None:
            return
        payload = json.loads(self.body)
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}"
        repos = self.stand_in.repos_of(repo_type)
        url = f"{self.stand_in.url}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
        if repo_id in repos:
            self._error(409, "RepoExists", f"You already created this {repo_type} repo",
                        body={"url": url})  # the Hub names the repo; huggingface_hub reads it
            return
        repos[repo_id] = StandInRepo({}, private=payload.get("visibility") == "private")
        self._json({"url": url, "name": repo_id})

    def validate_yaml(self) -> None:
        import yaml

        content = json.loads(self.body)["content"]
        try:
            if content.startswith("---\n"):
                yaml.safe_load(content.split("---\n")[1])
        except yaml.YAMLError as error:
            self._error(400, "BadRequest", "Invalid metadata", body={
                "errors": [{"message": str(error).splitlines()[0]}]})
            return
        self._json({"errors": [], "warnings": []})

    def preupload(self, kind: str, repo: str, rev: str) -> None:
        if self._writer() is None:
            return
        found = self._repo(repo, rev, kind)
        if found is not None:
            self._json({"files": [
                {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False,
                 "oid": _git_blob_id(found.files[item["path"]])
                 if item["path"] in found.files else None}
                for item in json.loads(self.body)["files"]]})

    def commit(self, kind: str, repo: str, rev: str) -> None:
        if self._writer() is None:
            return
        found = self._repo(repo, rev, kind)
        if found is None:
            return
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, found.commit):
            self._error(412, "PreconditionFailed", "A commit has happened since the parent")
            return
        files = dict(found.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: c for p, c in files.items() if not p.startswith(value["path"] + "/")}
            else:  # lfsFile: preupload never asks for LFS
                self._error(400, "BadRequest", f"the stand-in takes no {key} operation")
                return
        found.files = files
        found.commits.append(header["summary"])
        prefix = "datasets/" if kind == "datasets" else ""
        self._json({"success": True, "commitOid": found.commit,
                    "commitUrl": f"{self.stand_in.url}/{prefix}{repo}/commit/{found.commit}"})

    def _send_body(self, path: str, body: bytes) -> None:
        cut = self.stand_in.cut_once.pop(path, None)
        if cut is not None:  # a dropped connection: part of the body, then the socket closes
            self._write(body[:cut])
            self.close_connection = True
            return
        held = self.stand_in.hold.pop(path, None)
        if held is not None:  # a slow file: part of the body, then a pause the test ends
            self._write(body[:held])
            self.stand_in.holding.set()
            self.stand_in.release.wait(HOLD_SECONDS)
            body = body[held:]
        self._write(body)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client hung up (a cancel)
            self.close_connection = True
            return
        self.record.sent += len(data)

    def _json(self, payload) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(body)

    def _error(self, status: int, code: str, message: str, repo: StandInRepo | None = None,
               body: dict | None = None) -> None:
        body = json.dumps({"error": message, **(body or {})}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if repo is not None:
            self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self._write(body)
