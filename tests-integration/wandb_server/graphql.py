"""The GraphQL operations the wandb 0.31.0 client sends, answered from the store.

The server does not parse GraphQL: it reads the operation name from the query text (Python-side
queries arrive with an empty ``operationName``) and returns a response shaped like the selection
set that operation is known to ask for. Extra fields are ignored by the client, so run nodes are
always returned whole. An operation the server does not know is answered with a GraphQL error
naming it, and logged, so a test sees it instead of a silently wrong answer.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from collections.abc import Callable
from typing import Any

import yaml  # type: ignore[import-untyped]

from .store import RUN_STATES_DONE, Agent, Run, Store, Sweep, new_id, storage_id

_OP_RE = re.compile(r"\b(query|mutation)\s+(\w+)")


class GraphQLError(Exception):
    """Answered as ``{"errors": [{"message": ...}]}``; ``status`` is the HTTP status to use."""

    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.status = status


def operation_name(body: dict[str, Any]) -> str:
    """The operation's name: from the query text first, ``operationName`` as a fallback."""
    query = body.get("query") or ""
    m = _OP_RE.search(query)
    if m:
        return m.group(2)
    return str(body.get("operationName") or "")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars proposed by the sweeps engine
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default)


def _loads(value: Any, what: str) -> Any:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, json.JSONDecodeError) as e:
        raise GraphQLError(f"{what} is not valid JSON: {e}") from None


# -- run nodes ---------------------------------------------------------------------------------


def run_node(run: Run) -> dict[str, Any]:
    last = run.last_step()
    history_keys: dict[str, Any] = {}
    for row in run.rows():
        for key in row:
            history_keys.setdefault(key, {"typeCounts": [{"type": "number", "count": 0}]})
            history_keys[key]["typeCounts"][0]["count"] += 1
    return {
        "__typename": "Run",
        "id": run.id,
        "projectId": "1",
        "name": run.name,
        "displayName": run.display_name or run.name,
        "tags": list(run.tags),
        "sweepName": run.sweep,
        "state": run.state,
        "config": dumps(run.config),
        "group": run.group,
        "jobType": run.job_type,
        "commit": run.commit,
        "readOnly": False,
        "createdAt": run.created_at,
        "heartbeatAt": run.heartbeat_at,
        "description": run.description,
        "notes": run.notes,
        "host": run.host,
        "systemMetrics": "{}",
        "summaryMetrics": dumps(run.summary),
        "historyLineCount": len(run.history),
        "logLineCount": len(run.logs),
        "eventsLineCount": len(run.events),
        "user": {"name": "local", "username": "local"},
        "historyKeys": {"lastStep": last if last is not None else -1, "keys": history_keys},
        "project": {"id": "1", "name": run.project, "entity": {"id": "1", "name": run.entity}},
    }


def _sample(rows: list[Any], samples: int | None) -> list[Any]:
    """At most ``samples`` rows, evenly spread, always keeping the first and the last."""
    if samples is None or samples <= 0 or len(rows) <= samples:
        return rows
    if samples == 1:
        return [rows[-1]]
    step = (len(rows) - 1) / (samples - 1)
    return [rows[round(i * step)] for i in range(samples)]


# -- run filters (the MongoDB-like language of Api().runs) -------------------------------------

_MISSING = object()


def _field(run: Run, key: str) -> Any:
    simple: dict[str, Callable[[Run], Any]] = {
        "sweep": lambda r: r.sweep,
        "sweepName": lambda r: r.sweep,
        "state": lambda r: r.state,
        "group": lambda r: r.group,
        "jobType": lambda r: r.job_type,
        "job_type": lambda r: r.job_type,
        "tags": lambda r: r.tags,
        "name": lambda r: r.name,
        "displayName": lambda r: r.display_name or r.name,
        "display_name": lambda r: r.display_name or r.name,
        "created_at": lambda r: r.created_seq,
        "createdAt": lambda r: r.created_seq,
        "heartbeat_at": lambda r: r.heartbeat_at,
        "heartbeatAt": lambda r: r.heartbeat_at,
        "host": lambda r: r.host,
    }
    if key in simple:
        return simple[key](run)
    head, _, rest = key.partition(".")
    if head == "config" and rest:
        name = rest[: -len(".value")] if rest.endswith(".value") else rest
        return run.user_config().get(name, _MISSING)
    if head in ("summary_metrics", "summaryMetrics") and rest:
        value: Any = run.summary
        for part in rest.split("."):
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return value
    raise GraphQLError(f"unsupported run filter key {key!r} (test server)")


def _cmp(op: str, actual: Any, expected: Any) -> bool:
    if op == "$exists":
        return (actual is not _MISSING and actual is not None) == bool(expected)
    if actual is _MISSING:
        return op in ("$ne", "$nin")
    if isinstance(actual, list) and op in ("$eq", "$in", "$ne", "$nin"):
        wanted = expected if isinstance(expected, list) else [expected]
        hit = any(a in wanted for a in actual)
        return hit if op in ("$eq", "$in") else not hit
    if op == "$eq":
        return bool(actual == expected)
    if op == "$ne":
        return bool(actual != expected)
    if op == "$in":
        return actual in expected
    if op == "$nin":
        return actual not in expected
    if op == "$regex":
        return actual is not None and re.search(str(expected), str(actual)) is not None
    try:
        if op == "$gt":
            return bool(actual > expected)
        if op == "$gte":
            return bool(actual >= expected)
        if op == "$lt":
            return bool(actual < expected)
        if op == "$lte":
            return bool(actual <= expected)
    except TypeError:
        return False
    raise GraphQLError(f"unsupported filter operator {op!r} (test server)")


def match(run: Run, filters: Any) -> bool:
    if not filters:
        return True
    if not isinstance(filters, dict):
        raise GraphQLError(f"filters must be an object, got {filters!r}")
    for key, cond in filters.items():
        if key == "$and":
            if not all(match(run, f) for f in cond):
                return False
        elif key == "$or":
            if not any(match(run, f) for f in cond):
                return False
        elif key == "$nor":
            if any(match(run, f) for f in cond):
                return False
        else:
            actual = _field(run, key)
            if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
                if not all(_cmp(op, actual, exp) for op, exp in cond.items()):
                    return False
            elif not _cmp("$eq", actual, cond):
                return False
    return True


def _order(runs: list[Run], order: str | None) -> list[Run]:
    order = order or "+created_at"
    desc = order.startswith("-")
    key = order.lstrip("+-")
    present = [r for r in runs if _field(r, key) not in (_MISSING, None)]
    missing = [r for r in runs if r not in present]
    try:
        present.sort(key=lambda r: _field(r, key), reverse=desc)
    except TypeError:
        present.sort(key=lambda r: str(_field(r, key)), reverse=desc)
    return present + missing


# -- sweeps ------------------------------------------------------------------------------------


def _sweep_run_count_expected(sweep: Sweep) -> int | None:
    cap = sweep.config.get("run_cap")
    if isinstance(cap, int):
        return cap
    if sweep.config.get("method") != "grid":
        return None
    total = 1
    for spec in _flat_params(sweep.config.get("parameters") or {}):
        if "values" in spec:
            total *= max(1, len(spec["values"]))
    return total


def _flat_params(params: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec in params.values():
        if isinstance(spec, dict) and "parameters" in spec:
            out += _flat_params(spec["parameters"])
        elif isinstance(spec, dict):
            out.append(spec)
    return out


def sweep_node(store: Store, sweep: Sweep) -> dict[str, Any]:
    runs = store.sweep_runs(sweep)
    best: float | None = None
    metric = sweep.config.get("metric") or {}
    name = metric.get("name")
    if name:
        values: list[float] = [
            r.summary[name] for r in runs if isinstance(r.summary.get(name), (int, float))
        ]
        if values:
            best = min(values) if metric.get("goal", "minimize") == "minimize" else -max(values)
    return {
        "__typename": "Sweep",
        "id": sweep.id,
        "name": sweep.name,
        "displayName": sweep.display_name,
        "method": sweep.config.get("method", "grid"),
        "state": sweep.state,
        "description": sweep.description,
        "bestLoss": best,
        "config": sweep.config_yaml,
        "createdAt": sweep.created_at,
        "updatedAt": sweep.updated_at,
        "runCount": len(runs),
        "runCountExpected": _sweep_run_count_expected(sweep),
        "project": {"id": "1", "name": sweep.project, "entity": {"id": "1", "name": sweep.entity}},
        "runs": {
            "edges": [{"node": run_node(r), "cursor": r.name} for r in runs],
            "pageInfo": {"endCursor": None, "hasNextPage": False},
        },
    }


def _sweep_state_of(run_state: str) -> str:
    return run_state if run_state in ("running", *RUN_STATES_DONE) else "running"


def _next_trial(store: Store, sweep: Sweep) -> dict[str, Any] | None:
    """The next parameters W&B's own sweep engine proposes, or None when the sweep is done."""
    import sweeps  # W&B's open-source engine (also what the sweeps distribution uses)

    runs = store.sweep_runs(sweep)
    cap = sweep.config.get("run_cap")
    if isinstance(cap, int) and len(runs) + len(sweep.pending) >= cap:
        return None
    params = sweep.config.get("parameters") or {}
    known = [
        sweeps.SweepRun(
            name=r.name,
            state=_sweep_state_of(r.state),
            config={k: v for k, v in r.config.items() if k in params},
            summaryMetrics=r.summary,
            sampledHistory=r.rows(),
        )
        for r in runs
    ]
    known += [
        sweeps.SweepRun(name=run_id, state="pending", config=sweep.pending_config[run_id])
        for run_id in sweep.pending
    ]
    proposal = sweeps.next_run(sweep.config, known)
    if proposal is None:
        return None
    params_out: dict[str, Any] = json.loads(dumps(proposal.config))
    return params_out


# -- the operations ----------------------------------------------------------------------------

Handler = Callable[[Store, dict[str, Any], dict[str, Any]], Any]


class Operations:
    """One method per operation name; ``ctx`` carries the request's base URL and headers."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, op: str, variables: dict[str, Any], ctx: dict[str, Any]) -> Any:
        method = getattr(self, f"op_{op}", None)
        if method is None:
            raise GraphQLError(f'Unknown operation named "{op}" (wandb test server)')
        return method(variables, ctx)

    # viewer / probes

    def _viewer(self) -> dict[str, Any]:
        return {
            "id": storage_id("User", "local"),
            "entity": self.store.default_entity,
            "username": "local",
            "name": "local",
            "email": "local@127.0.0.1",
            "admin": False,
            "flags": "{}",
            "deletedAt": None,
            "apiKeys": {"edges": []},
            "teams": {"edges": [{"node": {"name": self.store.default_entity}}]},
        }

    def op_Viewer(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        return {"viewer": self._viewer()}

    op_GetDefaultEntity = op_Viewer
    op_GetViewer = op_Viewer

    def op_ServerFeaturesQuery(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        return {"serverInfo": {"features": []}}

    def op_OrganizationCoreWeaveOrganizationID(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        raise GraphQLError("organizations are not part of the test server")

    # runs: write path

    def op_UpsertBucket(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        store = self.store
        with store.lock:
            run: Run | None = None
            if v.get("name"):
                run = store.get_run(v.get("entity"), v.get("project"), v["name"])
                inserted = run is None
                if run is None:
                    run = store.ensure_run(v.get("entity"), v.get("project"), v["name"])
            elif v.get("id"):
                run = store.run_by_storage_id(v["id"])
                inserted = False
                if run is None:
                    raise GraphQLError(f"run with id {v['id']!r} not found")
            else:
                raise GraphQLError("UpsertBucket needs a run name or id")
            # A null variable means "leave unchanged" (later upserts send tags/group as null).
            if v.get("config") is not None:
                config = _loads(v["config"], "config")
                if not isinstance(config, dict):
                    raise GraphQLError("config must be a JSON object")
                run.config = config
            if v.get("summaryMetrics") is not None:
                summary = _loads(v["summaryMetrics"], "summaryMetrics")
                if isinstance(summary, dict):
                    run.summary = summary
            for var, attr in (
                ("groupName", "group"),
                ("jobType", "job_type"),
                ("displayName", "display_name"),
                ("display_name", "display_name"),
                ("notes", "notes"),
                ("description", "description"),
                ("host", "host"),
                ("program", "program"),
                ("commit", "commit"),
                ("sweep", "sweep"),
            ):
                if v.get(var) is not None:
                    setattr(run, attr, v[var])
            if v.get("tags") is not None:
                run.tags = list(v["tags"])
            resuming = (run.entity, run.project, run.name) in store.resuming
            store.resuming.discard((run.entity, run.project, run.name))
            if v.get("state") is not None:
                run.state = v["state"]
            elif inserted or resuming:
                # A new run, or a resumed one (RunResumeStatus came first), is live again. A
                # shared-mode writer joining a run does not change its state.
                run.state = "running"
                run.exitcode = None
            run.heartbeat_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            if run.sweep:
                sweep = store.find_sweep(run.sweep, run.entity)
                if sweep is not None:
                    sweep.pending.pop(run.name, None)
                    sweep.pending_config.pop(run.name, None)
            store.save()
            node = run_node(run)
        return {"upsertBucket": {"bucket": node, "inserted": inserted}}

    def op_RunResumeStatus(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        run = self.store.get_run(v.get("entity"), v.get("project"), v.get("name"))
        if run is None:
            return {"model": {"id": "1", "name": v.get("project"), "bucket": None}}
        with self.store.lock:
            self.store.resuming.add((run.entity, run.project, run.name))
            t = (run.config.get("_wandb") or {}).get("value", {}).get("t", {})
            node = run_node(run)
            node.update(
                {
                    "historyTail": dumps(run.history[-10:]),
                    "eventsTail": dumps(run.events[-10:]),
                    "wandbConfig": dumps({"t": t}),
                }
            )
        return {
            "model": {
                "id": "1",
                "name": run.project,
                "entity": {"id": "1", "name": run.entity},
                "bucket": node,
            }
        }

    def op_RewindRun(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        """``wandb.init(resume_from="<run>?_step=N")``, online or replayed by ``wandb sync``.

        Rows after step N are dropped, the run is live again and the answer's history line
        count is where the client's history stream continues. A run that does not exist, a
        metric other than ``_step`` and a step past the run's last one are refused, naming them.
        """
        name = v.get("runName") or ""
        metric = v.get("metricName")
        value = v.get("metricValue")
        if metric != "_step":
            raise GraphQLError(f"rewind of run {name!r}: only the _step metric is supported")
        if not isinstance(value, (int, float)) or value < 0 or value != int(value):
            raise GraphQLError(f"rewind of run {name!r}: step {value!r} is not a whole step >= 0")
        step = int(value)
        store = self.store
        with store.lock:
            run = store.get_run(v.get("entity"), v.get("project"), name)
            if run is None:
                raise GraphQLError(
                    f"rewind of run {name!r} in {v.get('entity')}/{v.get('project')}: no such run"
                )
            last = run.last_step()
            if last is None or step > last:
                raise GraphQLError(
                    f"rewind of run {name!r} to step {step}: the run's last step is "
                    f"{'none (no history)' if last is None else last}"
                )
            run.rewind(step)
            run.state = "running"
            run.exitcode = None
            store.resuming.add((run.entity, run.project, run.name))
            store.save()
            node = run_node(run)
        return {"rewindRun": {"rewoundRun": node}}

    def op_CreateRunFiles(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        from urllib.parse import quote

        entity = v.get("entity") or self.store.default_entity
        base = ctx["base_url"]
        files = [
            {
                "name": name,
                "uploadUrl": f"{base}/storage/{quote(entity)}/{quote(v['project'])}/"
                f"{quote(v['run'])}/{quote(name)}",
            }
            for name in v.get("files") or []
        ]
        run = self.store.get_run(entity, v.get("project"), v.get("run"))
        return {
            "createRunFiles": {
                "runID": run.id if run else None,
                "uploadHeaders": [],
                "files": files,
            }
        }

    def op_RunState(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        run = self.store.get_run(v.get("entity"), v.get("project"), v.get("run") or v.get("name"))
        return {"project": {"run": run_node(run) if run else None}}

    def op_StopRun(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        return {"stopRun": {"success": True}}

    # runs: public API reads

    def _run(self, v: dict[str, Any]) -> Run | None:
        return self.store.get_run(
            v.get("entity"), v.get("project"), v.get("name") or v.get("run") or v.get("runName")
        )

    def op_Run(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        run = self._run(v)
        return {"project": {"run": run_node(run) if run else None}}

    def op_Runs(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        filters = _loads(v.get("filters"), "filters") or {}
        runs = [r for r in self.store.project_runs(v.get("entity"), v.get("project"))]
        runs = _order([r for r in runs if match(r, filters)], v.get("order"))
        start = int(v["cursor"]) if v.get("cursor") else 0
        per_page = int(v.get("perPage") or 50)
        page = runs[start : start + per_page]
        end = start + len(page)
        return {
            "project": {
                "id": "1",
                "internalId": "1",
                "readOnly": False,
                "runCount": len(runs),
                "runs": {
                    "edges": [
                        {"node": run_node(r), "cursor": str(start + i + 1)}
                        for i, r in enumerate(page)
                    ],
                    "pageInfo": {"endCursor": str(end), "hasNextPage": end < len(runs)},
                },
            }
        }

    def _with_run(self, v: dict[str, Any], fill: Callable[[Run], dict[str, Any]]) -> Any:
        run = self._run(v)
        if run is None:
            return {"project": {"run": None}}
        with self.store.lock:
            node = run_node(run)
            node.update(fill(run))
        return {"project": {"run": node}}

    def op_RunFullHistory(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        samples = v.get("samples")
        return self._with_run(
            v,
            lambda r: {
                "history": _sample(list(r.history), samples),
                "events": _sample(list(r.events), samples),
            },
        )

    def op_RunHistoryKeys(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        return self._with_run(v, lambda r: {})

    def op_RunParquetHistory(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        # No parquet export: the client falls back to paging through HistoryPage.
        return self._with_run(v, lambda r: {"parquetHistory": {"parquetUrls": [], "liveData": []}})

    def op_HistoryPage(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        lo = v.get("minStep") or 0
        hi = v.get("maxStep")
        size = v.get("pageSize") or 1000

        def fill(r: Run) -> dict[str, Any]:
            rows = []
            for line, row in zip(r.history, [json.loads(x) for x in r.history], strict=True):
                step = row.get("_step", 0)
                if step >= lo and (hi is None or step < hi):
                    rows.append((step, line))
            rows.sort(key=lambda t: t[0])
            return {"history": [line for _, line in rows[:size]]}

        return self._with_run(v, fill)

    @staticmethod
    def _sampled(r: Run, spec: dict[str, Any]) -> list[dict[str, Any]]:
        keys = list(dict.fromkeys(spec.get("keys") or []))
        lo = spec.get("minStep", 0)
        hi = spec.get("maxStep")
        rows = []
        for row in sorted(r.rows(), key=lambda x: x.get("_step", 0)):
            step = row.get("_step", 0)
            # The client sends the sampled spec's maxStep inclusive (lastStep for a full scan).
            if step < lo or (hi is not None and step > hi):
                continue
            if all(k in row for k in keys):
                rows.append({k: row[k] for k in keys} if keys else row)
        return _sample(rows, spec.get("samples"))

    def op_SampledHistoryPage(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        spec = _loads(v.get("spec"), "spec") or {}
        return self._with_run(v, lambda r: {"sampledHistory": [self._sampled(r, spec)]})

    def op_RunSampledHistory(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        specs = v.get("specs") or []
        return self._with_run(
            v,
            lambda r: {
                "sampledHistory": [self._sampled(r, _loads(s, "specs") or {}) for s in specs]
            },
        )

    def op_RunFiles(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        from urllib.parse import quote

        def fill(r: Run) -> dict[str, Any]:
            files = self.store.run_files(r)
            names = v.get("fileNames") or []
            if names:
                files = [f for f in files if f[0] in names]
            pattern = v.get("pattern")
            if pattern:
                glob = pattern.replace("%", "*").replace("_", "?")
                files = [f for f in files if fnmatch.fnmatchcase(f[0], glob)]
            total = len(files)
            cursor = v.get("fileCursor")
            if cursor:
                files = [f for f in files if f[0] > cursor]
            limit = v.get("fileLimit") or 50
            page = files[:limit]
            base = f"{ctx['base_url']}/storage/{quote(r.entity)}/{quote(r.project)}/{quote(r.name)}"
            return {
                "fileCount": total,
                "files": {
                    "edges": [
                        {
                            "node": {
                                "id": storage_id("File", r.name, name),
                                "name": name,
                                "url": f"{base}/{quote(name)}",
                                "directUrl": f"{base}/{quote(name)}",
                                "sizeBytes": size,
                                "mimetype": "application/octet-stream",
                                "updatedAt": r.heartbeat_at,
                                "md5": None,
                            },
                            "cursor": name,
                        }
                        for name, size in page
                    ],
                    "pageInfo": {
                        "endCursor": page[-1][0] if page else None,
                        "hasNextPage": len(files) > len(page),
                    },
                },
            }

        return self._with_run(v, fill)

    # sweeps and agents

    def op_UpsertSweep(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        store = self.store
        with store.lock:
            if v.get("id"):
                sweep = next((s for s in store.sweeps.values() if s.id == v["id"]), None)
                if sweep is None:
                    raise GraphQLError(f"sweep {v['id']!r} not found")
                if v.get("state"):
                    sweep.state = v["state"]
            else:
                text = v.get("config")
                if not text:
                    raise GraphQLError("UpsertSweep needs a config")
                try:
                    config = yaml.safe_load(text)
                except yaml.YAMLError as e:
                    raise GraphQLError(f"sweep config is not valid YAML: {e}") from None
                if not isinstance(config, dict):
                    raise GraphQLError("sweep config must be a mapping")
                method = config.get("method")
                if method not in ("grid", "random", "bayes"):
                    raise GraphQLError(
                        f"invalid sweep method {method!r}: must be one of grid, random, bayes"
                    )
                if not isinstance(config.get("parameters"), dict) or not config["parameters"]:
                    raise GraphQLError("sweep config needs a non-empty 'parameters' mapping")
                entity = v.get("entityName") or store.default_entity
                project = v.get("projectName") or "uncategorized"
                name = new_id()
                sweep = Sweep(
                    entity=entity,
                    project=project,
                    name=name,
                    id=storage_id("Sweep", entity, project, name),
                    config_yaml=text,
                    config=config,
                    display_name=v.get("displayName"),
                    description=v.get("description"),
                )
                store.sweeps[(entity, project, name)] = sweep
            sweep.updated_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            store.save()
            node = sweep_node(store, sweep)
        return {"upsertSweep": {"sweep": node, "inserted": True, "configValidationWarnings": []}}

    def _sweep(self, v: dict[str, Any]) -> Sweep | None:
        return self.store.find_sweep(
            v.get("name") or v.get("sweep") or "", v.get("entity"), v.get("project")
        )

    def op_GetSweep(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        sweep = self._sweep(v)
        return {"project": {"sweep": sweep_node(self.store, sweep) if sweep else None}}

    op_GetSweepLegacy = op_GetSweep
    op_SweepWithRuns = op_GetSweep
    op_GetSweepState = op_GetSweep
    op_SweepConfig = op_GetSweep

    def op_CreateAgent(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        store = self.store
        sweep = store.find_sweep(v.get("sweep") or "", v.get("entityName"), v.get("projectName"))
        if sweep is None:
            raise GraphQLError(f"sweep {v.get('sweep')!r} not found", status=404)
        with store.lock:
            agent = Agent(
                id=storage_id("Agent", new_id()),
                sweep=sweep.name,
                entity=sweep.entity,
                project=sweep.project,
                host=v.get("host"),
            )
            store.agents[agent.id] = agent
            store.save()
        return {"createAgent": {"agent": {"id": agent.id, "name": agent.id}}}

    def op_Heartbeat(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        store = self.store
        with store.lock:
            agent = store.agents.get(v.get("id") or "")
            if agent is None:
                raise GraphQLError(f"agent {v.get('id')!r} not found", status=404)
            sweep = store.find_sweep(agent.sweep, agent.entity, agent.project)
            if sweep is None:
                raise GraphQLError(f"sweep {agent.sweep!r} not found", status=404)
            agent.last_seen = time.time()
            run_state = _loads(v.get("runState"), "runState") or {}
            active = {k for k, running in run_state.items() if running}
            # A trial this agent was handed but never started (no run was created) is free again.
            for run_id, owner in list(sweep.pending.items()):
                if owner == agent.id and run_id not in active:
                    sweep.pending.pop(run_id)
                    sweep.pending_config.pop(run_id, None)
            # Agents silent for a minute lose their unstarted trials too.
            for run_id, owner in list(sweep.pending.items()):
                other = store.agents.get(owner)
                if other is None or time.time() - other.last_seen > 60:
                    sweep.pending.pop(run_id)
                    sweep.pending_config.pop(run_id, None)
            commands: list[dict[str, Any]] = []
            if sweep.state in ("FINISHED", "CANCELED", "CANCELLED"):
                commands = [{"type": "exit"}]
            elif sweep.state == "RUNNING" and not active:
                params = _next_trial(store, sweep)
                if params is None:
                    if not sweep.pending:
                        sweep.state = "FINISHED"
                    commands = [{"type": "exit"}]
                else:
                    run_id = new_id()
                    sweep.pending[run_id] = agent.id
                    sweep.pending_config[run_id] = params
                    agent.assigned.append(run_id)
                    commands = [{"type": "run", "run_id": run_id, "program": None, "args": params}]
            store.save()
        return {"agentHeartbeat": {"agent": {"id": agent.id}, "commands": dumps(commands)}}
