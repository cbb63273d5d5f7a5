"""Azurite's workspace written directly: containers and blobs as they would be after uploads,
in the files Azurite loads at start (its LokiJS metadata databases and one extent file).

Why: Azurite spends about 1.3 ms of CPU per upload, so seeding 5,100 blobs through its API
takes 7 s (per test process); loading them from the workspace takes a fraction of a second.
The format is Azurite 3's own (``LokiBlobMetadataStore``, ``LokiExtentMetadataStore``):
``.ci/run`` installs ``azurite@3``, and the tests that use a preload check that its blobs
list exactly like uploaded ones (``tests/integration/test_azurite_support.py``), so a format
change fails loudly there, not as wrong listings elsewhere.

The databases are written with ``databaseVersion`` 1.1, which makes LokiJS rebuild every
index when it loads them, so only the documents need to be right.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.azurite import Blob, Container

ACCOUNT = "devstoreaccount1"
BLOB_DB = "__azurite_db_blob__.json"
EXTENT_DB = "__azurite_db_blob_extent__.json"
EXTENT_DIR = "__blobstorage__"


def _collection(
    name: str, docs: Sequence[dict[str, Any]], indices: Sequence[str], unique: Sequence[str] = ()
) -> dict[str, Any]:
    data = [
        {**doc, "meta": {"revision": 0, "created": 0, "version": 0}, "$loki": i + 1}
        for i, doc in enumerate(docs)
    ]
    return {
        "name": name,
        "data": data,
        "idIndex": None,
        "binaryIndices": {p: {"name": p, "dirty": True, "values": []} for p in indices},
        "constraints": None,
        "uniqueNames": list(unique),
        "transforms": {},
        "objType": name,
        "dirty": False,
        "adaptiveBinaryIndices": True,
        "transactional": False,
        "cloneObjects": False,
        "cloneMethod": "parse-stringify",
        "asyncListeners": False,
        "disableMeta": False,
        "disableChangesApi": True,
        "disableDeltaChangesApi": True,
        "autoupdate": False,
        "serializableIndices": True,
        "disableFreeze": True,
        "ttl": None,
        "maxId": len(data),
        "DynamicViews": [],
        "events": {},
        "changes": [],
        "dirtyIds": [],
    }


def _database(filename: str, collections: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "filename": filename,
        "collections": collections,
        "databaseVersion": 1.1,  # < 1.5: LokiJS rebuilds every index on load
        "engineVersion": 1.5,
        "autosave": True,
        "autosaveInterval": 5000,
        "autosaveHandle": None,
        "throttledSaves": True,
        "options": {},
        "persistenceMethod": "fs",
        "persistenceAdapter": None,
        "verbose": False,
        "events": {},
        "ENV": "NODEJS",
    }


def _etag(container: str, name: str, data: bytes) -> str:
    digest = hashlib.sha256(f"{container}/{name}".encode() + data).hexdigest()
    return f'"0x{digest[:15].upper()}"'


def write_workspace(folder: Path, containers: Sequence[Container]) -> None:
    """Write ``containers`` (and their blobs) into Azurite's workspace ``folder``; nothing
    when there are none (Azurite then starts empty)."""
    if not containers:
        return
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    extent_id = str(uuid.uuid4())
    (folder / EXTENT_DIR).mkdir(exist_ok=True)
    offset = 0
    blob_docs: list[dict[str, Any]] = []
    with open(folder / EXTENT_DIR / extent_id, "wb") as extent:
        for container in containers:
            for name, blob in sorted(container.blobs.items()):
                extent.write(blob.data)
                blob_docs.append(_blob_doc(container.name, name, blob, now, extent_id, offset))
                offset += len(blob.data)
    container_docs = [_container_doc(c, now) for c in containers]
    blob_db = _database(
        str(folder / BLOB_DB),
        [
            _collection("$SERVICES_COLLECTION$", [], [], unique=["accountName"]),
            _collection("$CONTAINERS_COLLECTION$", container_docs, ["accountName", "name"]),
            _collection(
                "$BLOBS_COLLECTION$",
                blob_docs,
                ["accountName", "containerName", "name", "snapshot"],
            ),
            _collection(
                "$BLOCKS_COLLECTION$", [], ["accountName", "containerName", "blobName", "name"]
            ),
        ],
    )
    millis = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    extent_doc = {
        "id": extent_id,
        "locationId": "Default",
        "path": extent_id,
        "size": offset,
        "lastModifiedInMS": millis,
        "LastModifyInMS": millis,
    }
    extent_db = _database(
        str(folder / EXTENT_DB), [_collection("$EXTENTS_COLLECTION$", [extent_doc], ["id"])]
    )
    (folder / BLOB_DB).write_text(json.dumps(blob_db))
    (folder / EXTENT_DB).write_text(json.dumps(extent_db))


def _container_doc(container: Container, now: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "etag": _etag(container.name, "", b""),
        "lastModified": now,
        "leaseStatus": "unlocked",
        "leaseState": "available",
        "hasImmutabilityPolicy": False,
        "hasLegalHold": False,
    }
    if container.public:
        properties["publicAccess"] = "container"
    return {"accountName": ACCOUNT, "name": container.name, "properties": properties}


def _blob_doc(
    container: str, name: str, blob: Blob, now: str, extent_id: str, offset: int
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "creationTime": now,
        "lastModified": now,
        "etag": _etag(container, name, blob.data),
        "contentLength": len(blob.data),
        "contentType": "application/octet-stream",
    }
    md5 = blob.md5_property()
    if md5 is not None:
        properties["contentMD5"] = {"type": "Buffer", "data": list(base64.b64decode(md5))}
    properties.update(
        {
            "blobType": "BlockBlob",
            "leaseStatus": "unlocked",
            "leaseState": "available",
            "serverEncrypted": True,
            "accessTier": "Hot",
            "accessTierInferred": True,
            "accessTierChangeTime": now,
        }
    )
    return {
        "deleted": False,
        "accountName": ACCOUNT,
        "containerName": container,
        "name": name,
        "properties": properties,
        "snapshot": "",
        "isCommitted": True,
        "persistency": {"id": extent_id, "offset": offset, "count": len(blob.data)},
    }


__all__ = ["write_workspace"]
