"""Artifacts on the test server: versions, their manifests, aliases, and which runs used them.

What the wandb 0.31.0 client sends for ``run.log_artifact`` (Python first checks the type of an
existing version, ``ArtifactType``; then core creates the version, ``CreateArtifact``, uploads
its manifest through ``CreateArtifactManifest`` and a PUT, and commits it, ``CommitArtifact``) and
for ``run.use_artifact("entity/project/name:alias")`` (the version is looked up,
``ArtifactMembershipByName``, then the use is recorded, ``UseArtifact``). Versions are numbered per
collection (``v0``, ``v1``, ...); a version whose digest the collection already holds is the
existing one (the client's digest deduplication). Reference entries are stored as the client sent
them: the test server never fetches a reference.

State is kept in ``<data dir>/artifacts.json`` (written after every change, like the store's
``state.json``); manifests are stored as uploaded files under ``<data dir>/files/_artifacts``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .store import new_id, storage_id


@dataclass
class ArtifactVersion:
    id: str
    entity: str
    project: str
    collection: str
    type: str
    digest: str
    version_index: int
    state: str = "PENDING"
    metadata: str | None = None
    description: str | None = None
    aliases: list[str] = field(default_factory=list)
    created_by: str | None = None  # run name of the producer
    manifest: dict[str, Any] | None = None
    used_by: list[str] = field(default_factory=list)  # "entity/project/run" of consumers
    created_at: str = "2026-01-01T00:00:00"


class ArtifactStore:
    """Every artifact version the server knows, by id; one lock, saved after each change."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "artifacts.json"
        self.files = data_dir / "files" / "_artifacts"
        self.lock = threading.RLock()
        self.versions: dict[str, ArtifactVersion] = {}
        if self.path.exists():
            for raw in json.loads(self.path.read_text()):
                version = ArtifactVersion(**raw)
                self.versions[version.id] = version

    def save(self) -> None:
        with self.lock:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps([asdict(v) for v in self.versions.values()]))
            os.replace(tmp, self.path)

    def collection(self, entity: str, project: str, name: str) -> list[ArtifactVersion]:
        with self.lock:
            found = [
                v
                for v in self.versions.values()
                if (v.entity, v.project, v.collection) == (entity, project, name)
            ]
            return sorted(found, key=lambda v: v.version_index)

    def find(self, entity: str, project: str, name: str) -> ArtifactVersion | None:
        """``name`` is ``collection:alias``, ``collection:vN`` or ``collection:<digest>``."""
        collection, _, tag = name.partition(":")
        tag = tag or "latest"
        versions = self.collection(entity, project, collection)
        for v in versions:
            if tag == f"v{v.version_index}" or tag in v.aliases or tag == v.digest:
                return v
        return None

    def create(self, variables: dict[str, Any]) -> ArtifactVersion:
        with self.lock:
            entity = variables.get("entityName") or ""
            project = variables.get("projectName") or "uncategorized"
            name = variables["artifactCollectionName"]
            digest = variables.get("digest") or ""
            versions = self.collection(entity, project, name)
            aliases = [a["alias"] for a in variables.get("aliases") or []]
            same = next((v for v in versions if v.digest == digest), None)
            if same is not None:
                version = same
            else:
                version = ArtifactVersion(
                    id=storage_id("Artifact", entity, project, name, new_id(12)),
                    entity=entity,
                    project=project,
                    collection=name,
                    type=variables.get("artifactTypeName") or "unspecified",
                    digest=digest,
                    version_index=len(versions),
                    metadata=variables.get("metadata"),
                    description=variables.get("description"),
                    created_by=variables.get("runName"),
                )
                self.versions[version.id] = version
            self._move_aliases(version, aliases)
            self.save()
            return version

    def _move_aliases(self, version: ArtifactVersion, aliases: list[str]) -> None:
        """An alias names one version of a collection: giving it to ``version`` takes it away
        from the others."""
        for other in self.collection(version.entity, version.project, version.collection):
            if other is not version:
                other.aliases = [a for a in other.aliases if a not in aliases]
        for alias in aliases:
            if alias not in version.aliases:
                version.aliases.append(alias)

    def manifest_path(self, version: ArtifactVersion) -> Path:
        return self.files / version.id.replace("/", "_").replace("=", "") / "wandb_manifest.json"

    def store_manifest(self, artifact_id: str, body: bytes) -> None:
        with self.lock:
            version = self.versions.get(artifact_id)
            if version is None:
                raise KeyError(artifact_id)
            path = self.manifest_path(version)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            try:
                version.manifest = json.loads(body)
            except json.JSONDecodeError:
                version.manifest = None
            self.save()

    def commit(self, artifact_id: str) -> ArtifactVersion:
        with self.lock:
            version = self.versions[artifact_id]
            version.state = "COMMITTED"
            self.save()
            return version

    def use(self, artifact_id: str, run_path: str) -> ArtifactVersion:
        with self.lock:
            version = self.versions[artifact_id]
            if run_path not in version.used_by:
                version.used_by.append(run_path)
            self.save()
            return version

    def view(self) -> list[dict[str, Any]]:
        """The test API's view: every version with its manifest and its consumers."""
        with self.lock:
            return [asdict(v) for v in sorted(self.versions.values(), key=lambda v: v.id)]
