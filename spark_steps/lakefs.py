"""File operations on the lake, local directory or S3, through pyarrow.fs.

Used by the Spark driver programs for what Spark itself does not do: reading a manifest,
moving a bad file to quarantine, and the directory swap that publishes a partition.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass

from pyarrow import fs as pafs

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"


@dataclass
class LakeFS:
    root: str  # "/abs/dir" or "s3://bucket/prefix"
    s3_scheme_for_spark: str = "s3a"  # EMR reads "s3://"; open-source Spark needs "s3a://"

    def __post_init__(self) -> None:
        self.is_s3 = self.root.startswith("s3://")
        if self.is_s3:
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            self.fs = pafs.S3FileSystem(
                endpoint_override=endpoint,
                region=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
            )
            self._base = self.root[len("s3://"):].rstrip("/")
        else:
            self.fs = pafs.LocalFileSystem()
            self._base = os.path.abspath(self.root)

    # -- paths -----------------------------------------------------------------
    def path(self, rel: str) -> str:
        """Path for pyarrow.fs (no scheme)."""
        return f"{self._base}/{rel.lstrip('/')}" if rel else self._base

    def uri(self, rel: str) -> str:
        """Path for Spark."""
        if self.is_s3:
            return f"{self.s3_scheme_for_spark}://{self.path(rel)}"
        return "file://" + self.path(rel)

    # -- small reads and writes -------------------------------------------------
    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def read_json(self, rel: str) -> dict | None:
        if not self.exists(rel):
            return None
        with self.fs.open_input_stream(self.path(rel)) as f:
            return json.loads(f.read().decode("utf-8"))

    def write_json(self, rel: str, doc: dict) -> None:
        self.write_bytes(rel, json.dumps(doc, indent=2, sort_keys=True, default=str).encode())

    def write_bytes(self, rel: str, data: bytes) -> None:
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if not self.is_s3:
            self.fs.create_dir(self.path(parent), recursive=True)
        with self.fs.open_output_stream(self.path(rel)) as f:
            f.write(data)

    def size(self, rel: str) -> int:
        return self.fs.get_file_info(self.path(rel)).size

    def list_dir(self, rel: str) -> list[str]:
        """Names (not paths) of the entries directly below rel; [] when it does not exist."""
        if not self.exists(rel):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(rel), recursive=False))
        return sorted(i.base_name for i in infos)

    # -- moves --------------------------------------------------------------------
    def move(self, src_rel: str, dst_rel: str) -> None:
        parent = dst_rel.rsplit("/", 1)[0]
        if not self.is_s3:
            self.fs.create_dir(self.path(parent), recursive=True)
        self.fs.move(self.path(src_rel), self.path(dst_rel))

    def delete_dir(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_dir(self.path(rel))

    def temp_dir(self, dataset_rel: str) -> str:
        """A hidden sibling directory for writing before a publish. Readers skip names
        starting with '.' or '_' (Spark, Hive, DuckDB globs on '*=*')."""
        parent = dataset_rel.rsplit("/", 1)[0]
        return f"{parent}/.tmp-{uuid.uuid4().hex[:12]}"

    def swap_in(self, tmp_rel: str, final_rel: str) -> None:
        """Publish tmp_rel as final_rel.

        Locally this is two renames in the same directory: the old version moves aside,
        the new one takes its name. A reader sees the old directory, the new one, or for
        the instant between the renames none - never a mix or a half-written one. A crash
        between the two leaves the old version in a '.old-*' sibling and no partition; the
        rerun publishes again. On S3 there is no rename: objects are copied then the
        temporary prefix deleted (S3 publishing is the subject of the S3 lake issue).
        """
        parent, name = final_rel.rsplit("/", 1)
        old = f"{parent}/.old-{name}-{uuid.uuid4().hex[:8]}"
        had_old = self.exists(final_rel)
        if had_old:
            self.fs.move(self.path(final_rel), self.path(old))
        self.fs.move(self.path(tmp_rel), self.path(final_rel))
        if had_old:
            self.fs.delete_dir(self.path(old))
