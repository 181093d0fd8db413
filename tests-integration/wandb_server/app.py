"""HTTP side of the test server: GraphQL, the file stream, file storage and the test API."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .artifact_ops import ServerOperations
from .graphql import GraphQLError, dumps, operation_name, run_node, sweep_node
from .store import Run, Store

# Bodies are kept in the request log (so a test can grep them for secrets) up to this size.
_LOG_BODY_LIMIT = 256 * 1024


class RequestLog:
    """Every request the server saw, minus the Authorization header; also appended to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []

    def add(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.entries.append(entry)
            with self.path.open("a") as f:
                f.write(json.dumps(entry) + "\n")

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.entries)


def _apply_lines(
    lines: list[str], index: list[int | None], offset: int, content: list[str]
) -> None:
    """Write ``content`` at line ``offset`` of the run's (non-shared) stream.

    ``index`` maps this stream's line numbers to positions in ``lines``, which may also hold
    lines appended by shared-mode writers: a retried chunk (or ``wandb sync`` re-sending a
    partly uploaded run) replaces what it sent before, new lines are appended, and lines of
    other writers are never overwritten. Offsets past the end (a resumed client counts every
    line of the run) leave unmapped slots.
    """
    if offset > len(index):
        index.extend([None] * (offset - len(index)))
    for j, line in enumerate(content):
        slot = offset + j
        if slot < len(index) and index[slot] is not None:
            lines[index[slot]] = line  # type: ignore[index]
            continue
        lines.append(line)
        if slot < len(index):
            index[slot] = len(lines) - 1
        else:
            index.append(len(lines) - 1)


def _append_new(
    lines: list[str], high_water: dict[str, int], key: str, offset: int, content: list[str]
) -> None:
    """Shared mode: every writer counts offsets from 0, so append what this writer has not sent."""
    seen = high_water.get(key, 0)
    fresh = content[max(0, seen - offset) :]
    lines.extend(fresh)
    high_water[key] = max(seen, offset + len(content))


def apply_file_stream(run: Run, body: dict[str, Any], client_id: str | None) -> None:
    files: dict[str, Any] = body.get("files") or {}
    client = None
    if client_id is not None:
        from .store import ClientStream

        client = run.clients.setdefault(client_id, ClientStream())
    for name, chunk in files.items():
        content = [str(x) for x in chunk.get("content") or []]
        offset = int(chunk.get("offset") or 0)
        if name == "wandb-summary.json":
            if not content:
                continue
            summary = json.loads(content[-1])
            if client is not None:
                run.summary.update(summary)
            else:
                run.summary = summary
            continue
        if name == "wandb-history.jsonl":
            lines = run.history
        elif name == "wandb-events.jsonl":
            lines = run.events
        else:  # output.log and any other console stream
            lines = run.logs
        if client is not None:
            _append_new(lines, client.high_water, name, offset, content)
        else:
            _apply_lines(lines, run.stream_index.setdefault(name, []), offset, content)
    for name in body.get("uploaded") or []:
        if name not in run.uploaded:
            run.uploaded.append(name)
    run.heartbeat_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    if body.get("complete"):
        code = body.get("exitcode")
        code = int(code) if code is not None else 0
        state = "finished" if code == 0 else "failed"
        if client is not None:
            client.complete = True
            client.exitcode = code
            # One failed writer fails the shared run; a later writer finishing cleanly
            # does not hide that.
            if run.state == "failed" and state == "finished":
                return
        run.state = state
        run.exitcode = code


def run_view(run: Run, store: Store) -> dict[str, Any]:
    """The test API's view of a run: everything decoded."""
    return {
        "entity": run.entity,
        "project": run.project,
        "name": run.name,
        "id": run.id,
        "display_name": run.display_name,
        "state": run.state,
        "exitcode": run.exitcode,
        "group": run.group,
        "job_type": run.job_type,
        "tags": run.tags,
        "sweep": run.sweep,
        "config": run.user_config(),
        "raw_config": run.config,
        "summary": run.summary,
        "history": run.rows(),
        "logs": run.logs,
        "events_count": len(run.events),
        "files": [name for name, _ in store.run_files(run)],
        "uploaded": run.uploaded,
        "writers": len(run.clients),
        "rewinds": run.rewinds,
        "host": run.host,
        "notes": run.notes,
    }


class Handler(BaseHTTPRequestHandler):
    server: WandbTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- plumbing ------------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, dumps(value).encode())

    def _record(self, body: bytes, op: str | None) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        self.server.log.add(
            {
                "time": time.time(),
                "method": self.command,
                "path": self.path,
                "op": op,
                "headers": headers,
                "has_auth": "Authorization" in self.headers,
                "body": body[:_LOG_BODY_LIMIT].decode("utf-8", "replace"),
            }
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.host_port}"

    # -- verbs ---------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/_test/"):
            return self._test_api(path, parse_qs(urlsplit(self.path).query))
        self._record(b"", None)
        if path in ("/", "/healthz"):
            return self._json(200, {"server": "wandb-test-server", "ok": True})
        if path.startswith("/storage/"):
            return self._download(path)
        self._json(404, {"error": f"no route for GET {path}"})

    def do_PUT(self) -> None:
        body = self._body()
        self._record(b"<%d bytes of file content>" % len(body), None)
        path = urlsplit(self.path).path
        if not path.startswith("/storage/"):
            return self._json(404, {"error": f"no route for PUT {path}"})
        if path.startswith("/storage/_artifacts/"):
            return self._artifact_manifest(path, body)
        parts = [unquote(p) for p in path[len("/storage/") :].split("/")]
        if len(parts) < 4:
            return self._json(400, {"error": "expected /storage/<entity>/<project>/<run>/<file>"})
        entity, project, run, name = parts[0], parts[1], parts[2], "/".join(parts[3:])
        try:
            target = self.server.store.file_path(entity, project, run, name)
        except ValueError as e:
            return self._json(400, {"error": str(e)})
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        self._json(200, {})

    def _artifact_manifest(self, path: str, body: bytes) -> None:
        artifact_id = unquote(path[len("/storage/_artifacts/") :].split("/")[0])
        try:
            self.server.ops.artifacts.store_manifest(artifact_id, body)
        except KeyError:
            return self._json(404, {"error": f"no artifact {artifact_id!r}"})
        self._json(200, {})

    def do_POST(self) -> None:
        body = self._body()
        path = urlsplit(self.path).path
        if path == "/graphql":
            return self._graphql(body)
        if path.endswith("/file_stream") and path.startswith("/files/"):
            self._record(body, None)
            return self._file_stream(path, body)
        self._record(body, None)
        self._json(404, {"error": f"no route for POST {path}"})

    # -- routes --------------------------------------------------------------------------------

    def _graphql(self, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._record(raw, None)
            return self._json(400, {"errors": [{"message": "request body is not JSON"}]})
        op = operation_name(body)
        self._record(raw, op)
        variables = body.get("variables") or {}
        try:
            data = self.server.ops.handle(op, variables, {"base_url": self.base_url})
        except GraphQLError as e:
            if self.server.verbose or "Unknown operation" in str(e):
                print(f"wandb test server: {op}: {e}", file=sys.stderr, flush=True)
            return self._json(e.status, {"data": None, "errors": [{"message": str(e)}]})
        self._json(200, {"data": data})

    def _file_stream(self, path: str, raw: bytes) -> None:
        parts = [unquote(p) for p in path.split("/")]
        # ['', 'files', entity, project, run, 'file_stream']
        if len(parts) != 6:
            return self._json(404, {"error": "bad file_stream path"})
        _, _, entity, project, run_name, _ = parts
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self._json(400, {"error": "file_stream body is not JSON"})
        store = self.server.store
        async_mode = self.headers.get("X-Wandb-Use-Async-Filestream", "").lower() == "true"
        client_id = self.headers.get("X-Wandb-Async-Client-Id") if async_mode else None
        if async_mode and not client_id:
            client_id = "anonymous"
        with store.lock:
            run = store.ensure_run(entity, project, run_name)
            apply_file_stream(run, body, client_id)
            store.save()
        self._json(200, {"exitcode": None, "limits": {}})

    def _download(self, path: str) -> None:
        parts = [unquote(p) for p in path[len("/storage/") :].split("/")]
        if len(parts) < 4:
            return self._json(404, {"error": "no such file"})
        try:
            target = self.server.store.file_path(parts[0], parts[1], parts[2], "/".join(parts[3:]))
        except ValueError as e:
            return self._json(400, {"error": str(e)})
        if not target.is_file():
            return self._json(404, {"error": f"no such file {path}"})
        self._send(200, target.read_bytes(), "application/octet-stream")

    def _test_api(self, path: str, query: dict[str, list[str]]) -> None:
        store = self.server.store
        parts = [unquote(p) for p in path.strip("/").split("/")][1:]
        with store.lock:
            if parts == ["requests"]:
                return self._json(200, self.server.log.all())
            if parts == ["artifacts"]:
                return self._json(200, self.server.ops.artifacts.view())
            if parts == ["runs"]:
                runs = sorted(store.runs.values(), key=lambda r: r.created_seq)
                for key, attr in (("entity", "entity"), ("project", "project")):
                    if key in query:
                        runs = [r for r in runs if getattr(r, attr) == query[key][0]]
                return self._json(200, [run_view(r, store) for r in runs])
            if len(parts) == 4 and parts[0] == "runs":
                run = store.get_run(parts[1], parts[2], parts[3])
                if run is None:
                    return self._json(404, {"error": f"no run {'/'.join(parts[1:])}"})
                return self._json(200, run_view(run, store))
            if parts == ["sweeps"]:
                return self._json(
                    200,
                    [
                        {
                            **sweep_node(store, s),
                            "entity": s.entity,
                            "project": s.project,
                            "parsed_config": s.config,
                            "runs": [r.name for r in store.sweep_runs(s)],
                        }
                        for s in store.sweeps.values()
                    ],
                )
            if parts == ["graphql-run"] and "path" in query:
                entity, project, name = query["path"][0].split("/")
                run = store.get_run(entity, project, name)
                return self._json(200, run_node(run) if run else None)
        self._json(404, {"error": f"no test route {path}"})


class WandbTestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # wandb-core opens many connections at once (parallel file uploads and downloads); the
    # default backlog of 5 makes the kernel reset some, and with bounded retries files are lost
    request_queue_size = 256

    def __init__(self, host: str, port: int, data_dir: Path, entity: str, verbose: bool) -> None:
        super().__init__((host, port), Handler)
        self.store = Store(data_dir, entity)
        self.ops = ServerOperations(self.store)
        self.log = RequestLog(data_dir / "requests.jsonl")
        self.verbose = verbose
        self.host_port = f"{host}:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that exits with keep-alive connections open resets them: not an error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)
