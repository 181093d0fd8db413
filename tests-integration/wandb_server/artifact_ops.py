"""The artifact operations of the wandb 0.31.0 client, answered from :mod:`.artifacts`.

:class:`ServerOperations` is :class:`~.graphql.Operations` plus these; the server uses it. The
nodes returned carry every field the client's fragments select (``ArtifactFragment``,
``ArtifactMembershipFragment``, ...), since the Python side validates them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .artifacts import ArtifactStore, ArtifactVersion
from .graphql import GraphQLError, Operations
from .store import Store, storage_id


def _project(entity: str, project: str) -> dict[str, Any]:
    return {"id": "1", "internalId": "1", "name": project, "entity": {"id": "1", "name": entity}}


def _collection(v: ArtifactVersion) -> dict[str, Any]:
    return {
        "__typename": "ArtifactSequence",
        "id": storage_id("ArtifactCollection", v.entity, v.project, v.collection),
        "name": v.collection,
        "project": _project(v.entity, v.project),
    }


def artifact_node(v: ArtifactVersion) -> dict[str, Any]:
    files = (v.manifest or {}).get("contents") or {}
    size = sum(int(e.get("size") or 0) for e in files.values() if isinstance(e, dict))
    aliases = [
        {
            "__typename": "ArtifactAlias",
            "id": storage_id("Alias", v.id, a),
            "alias": a,
            "artifactCollection": _collection(v),
        }
        for a in v.aliases
    ]
    return {
        "__typename": "Artifact",
        "id": v.id,
        "artifactSequence": _collection(v),
        "versionIndex": v.version_index,
        "artifactType": {"name": v.type},
        "description": v.description,
        "metadata": v.metadata or "{}",
        "ttlDurationSeconds": -1,
        "ttlIsInherited": True,
        "tags": [],
        "historyStep": None,
        "state": v.state,
        "size": size,
        "digest": v.digest,
        "commitHash": v.digest[:12],
        "fileCount": len(files),
        "createdAt": v.created_at,
        "updatedAt": v.created_at,
        "aliases": aliases,
    }


def membership_node(v: ArtifactVersion) -> dict[str, Any]:
    return {
        "__typename": "ArtifactCollectionMembership",
        "id": storage_id("Membership", v.id),
        "versionIndex": v.version_index,
        "createdAt": v.created_at,
        "aliases": [
            {"__typename": "ArtifactAlias", "id": storage_id("Alias", v.id, a), "alias": a}
            for a in v.aliases
        ],
        "artifactCollection": {**_collection(v), "__typename": "ArtifactSequence"},
        "artifact": artifact_node(v),
    }


class ServerOperations(Operations):
    """Runs, sweeps and agents (:class:`Operations`) plus artifacts."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.artifacts = ArtifactStore(store.data_dir)

    def _entity(self, v: dict[str, Any], key: str = "entity") -> str:
        return str(v.get(key) or self.store.default_entity)

    def _version(self, artifact_id: str | None) -> ArtifactVersion:
        version = self.artifacts.versions.get(artifact_id or "")
        if version is None:
            raise GraphQLError(f"artifact {artifact_id!r} not found")
        return version

    # -- logging a version ------------------------------------------------------------------------

    def op_ArtifactType(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        found = self.artifacts.find(self._entity(v), v.get("project") or "", v.get("name") or "")
        node = {"artifactType": {"name": found.type}} if found else None
        return {"project": {"artifact": node}}

    def op_CreateArtifact(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        variables = dict(v.get("input") or v)
        variables.setdefault("entityName", self.store.default_entity)
        version = self.artifacts.create(variables)
        versions = self.artifacts.collection(version.entity, version.project, version.collection)
        latest = versions[-1] if versions else version
        return {
            "createArtifact": {
                "artifact": {
                    **artifact_node(version),
                    "artifactSequence": {"latestArtifact": {"id": latest.id}},
                }
            }
        }

    def _manifest_upload(self, version: ArtifactVersion, ctx: dict[str, Any]) -> dict[str, Any]:
        url = f"{ctx['base_url']}/storage/_artifacts/{quote(version.id, safe='')}/manifest/x"
        return {
            "id": storage_id("ArtifactManifest", version.id),
            "file": {
                "id": storage_id("File", version.id, "wandb_manifest.json"),
                "name": "wandb_manifest.json",
                "displayName": "wandb_manifest.json",
                "uploadUrl": url,
                "uploadHeaders": [],
            },
        }

    def op_CreateArtifactManifest(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        variables = dict(v.get("input") or v)
        version = self._version(variables.get("artifactID"))
        return {"createArtifactManifest": {"artifactManifest": self._manifest_upload(version, ctx)}}

    def op_UpdateArtifactManifest(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        variables = dict(v.get("input") or v)
        manifest_id = variables.get("artifactManifestID") or ""
        version = next(
            (
                x
                for x in self.artifacts.versions.values()
                if storage_id("ArtifactManifest", x.id) == manifest_id
            ),
            None,
        )
        if version is None:
            raise GraphQLError(f"artifact manifest {manifest_id!r} not found")
        return {"updateArtifactManifest": {"artifactManifest": self._manifest_upload(version, ctx)}}

    def op_CommitArtifact(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        variables = dict(v.get("input") or v)
        version = self.artifacts.commit(self._version(variables.get("artifactID")).id)
        return {"commitArtifact": {"artifact": artifact_node(version)}}

    # -- reading and using a version --------------------------------------------------------------

    def _lookup(self, v: dict[str, Any]) -> ArtifactVersion | None:
        return self.artifacts.find(self._entity(v), v.get("project") or "", v.get("name") or "")

    def op_ArtifactMembershipByName(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        found = self._lookup(v)
        node = membership_node(found) if found is not None and found.state == "COMMITTED" else None
        return {"project": {"artifactCollectionMembership": node}}

    def op_ArtifactByName(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        found = self._lookup(v)
        return {"project": {"artifact": artifact_node(found) if found else None}}

    def op_ArtifactByID(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        found = self.artifacts.versions.get(v.get("id") or "")
        return {"artifact": artifact_node(found) if found else None}

    def op_UseArtifact(self, v: dict[str, Any], ctx: dict[str, Any]) -> Any:
        variables = dict(v.get("input") or v)
        version = self._version(variables.get("artifactID"))
        run_path = "/".join(
            (
                str(variables.get("entityName") or self.store.default_entity),
                str(variables.get("projectName") or "uncategorized"),
                str(variables.get("runName") or ""),
            )
        )
        self.artifacts.use(version.id, run_path)
        return {"useArtifact": {"artifact": artifact_node(version)}}
