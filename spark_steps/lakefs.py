"""File operations on the lake, local directory or S3, through pyarrow.fs.

Used by the Spark driver programs for what Spark itself does not do: reading a manifest,
moving a bad file to quarantine, and publishing a partition.

Spark and S3: EMR reads ``s3://`` natively. Open-source Spark needs the hadoop-aws jars
for ``s3a://``; where they are not installed (``SALESPIPE_SPARK_S3=bridge``, the default
for an S3 lake outside EMR) inputs are copied to a local scratch directory for Spark and
outputs uploaded from it. The lake's layout and publishing rules are the same either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlparse

from pyarrow import fs as pafs

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
DATA_FILE = "part-00000.parquet"  # every published dataset directory holds exactly one
STALE_OUTPUT_SECONDS = 24 * 3600


class LakeWriteError(Exception):
    """The lake could not be written (not writable, full, a file where a directory should
    be). One line naming the dataset and the reason; what was half written is removed."""

    def __init__(self, uri: str, reason: str):
        super().__init__(f"cannot publish {uri}: {reason}")
        self.uri, self.reason = uri, reason


# "pkg.Class: message" anywhere in a Java/Py4J error text ("Caused by: ...", "...: ...")
_JAVA_EXCEPTION = re.compile(r"(?:^|: |Caused by: )((?:[a-z_][\w$]*\.)+[A-Z][\w$]*): ([^\n]*)", re.M)
_JAVA_CLASS_PREFIX = re.compile(r"^(?:(?:[a-z_][\w$]*\.)+[A-Z][\w$]*: )+")
_IO_PACKAGES = ("java.io.", "java.nio.file.", "org.apache.hadoop.fs.")
_ERRNO = re.compile(r"^\[Errno \d+\] ")
_DETAIL = re.compile(r"\.? Detail: \[errno \d+\] (.*)$")


def io_failure_reason(exc: BaseException) -> str | None:
    """The root reason of an I/O failure, on one line; None when ``exc`` is not one.

    A Python ``OSError`` (pyarrow's filesystem errors are) is one; a Spark/Py4J error is
    one when its chain holds a java.io / java.nio.file / Hadoop filesystem exception,
    and the reason is the innermost such exception's message."""
    if isinstance(exc, OSError):
        # pyarrow: "[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"
        text = _ERRNO.sub("", " ".join(str(exc).split()))
        return _DETAIL.sub(r" (\1)", text) or type(exc).__name__
    found = [(cls, msg) for cls, msg in _JAVA_EXCEPTION.findall(str(exc)) if cls.startswith(_IO_PACKAGES)]
    if not found:
        return None
    cls, msg = found[-1]
    return _JAVA_CLASS_PREFIX.sub("", msg.strip()) or cls.rsplit(".", 1)[-1]


def inside_lake(rel: str) -> str:
    """``rel`` if it names something inside the lake: no ``..`` segment, no NUL. Every path
    and S3 key below the lake root is built through here."""
    if "\x00" in rel or ".." in rel.replace("\\", "/").split("/"):
        raise ValueError(f"not a path inside the lake: {rel!r}")
    return rel


def s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs = {"region": os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
    return pafs.S3FileSystem(**kwargs)


@dataclass
class LakeFS:
    root: str  # "/abs/dir" or "s3://bucket/prefix"
    spark_s3: str = field(default_factory=lambda: os.environ.get("SALESPIPE_SPARK_S3", "bridge"))  # native|bridge
    s3_scheme_for_spark: str = field(default_factory=lambda: os.environ.get("SALESPIPE_SPARK_S3_SCHEME", "s3a"))

    def __post_init__(self) -> None:
        self.is_s3 = self.root.startswith("s3://")
        if self.is_s3:
            self.fs = s3_filesystem()
            self._base = self.root[len("s3://"):].rstrip("/")
        else:
            self.fs = pafs.LocalFileSystem()
            self._base = os.path.abspath(self.root)
        self._bridged = self.is_s3 and self.spark_s3 != "native"
        self._scratch: str | None = None

    @property
    def spark_reads_copies(self) -> bool:
        """Spark reads a landed file from a local copy made for it (an S3 lake, bridged)."""
        return self._bridged

    # -- paths -----------------------------------------------------------------
    def path(self, rel: str) -> str:
        """Path for pyarrow.fs (no scheme); ``rel`` may not climb out of the lake."""
        return f"{self._base}/{inside_lake(rel).lstrip('/')}" if rel else self._base

    def uri(self, rel: str) -> str:
        """The lake URI of ``rel`` (what manifests and metadata show)."""
        return f"s3://{self.path(rel)}" if self.is_s3 else "file://" + self.path(rel)

    # -- what Spark reads and writes ---------------------------------------------
    def scratch(self) -> str:
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="salespipe-scratch-")
        return self._scratch

    def spark_input(self, rel: str) -> str:
        """A URI Spark can read ``rel`` (file or directory) from."""
        if not self.is_s3:
            return "file://" + self.path(rel)
        if not self._bridged:
            return f"{self.s3_scheme_for_spark}://{self.path(rel)}"
        local = os.path.join(self.scratch(), "in", rel)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        pafs.copy_files(self.path(rel), local, source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())
        return "file://" + local

    def spark_output(self, dataset_rel: str) -> str:
        """A fresh URI for Spark to write a dataset into before it is published."""
        tmp = f".tmp-{uuid.uuid4().hex[:12]}"
        if self._bridged:
            return "file://" + os.path.join(self.scratch(), "out", tmp)
        parent = dataset_rel.rsplit("/", 1)[0]
        if not self.is_s3:
            self._check_writable(parent, dataset_rel)
            self._sweep_stale_outputs(parent)
        return self.uri(f"{parent}/{tmp}") if not self.is_s3 else f"{self.s3_scheme_for_spark}://{self.path(parent)}/{tmp}"

    def _sweep_stale_outputs(self, dir_rel: str) -> None:
        """Remove staging directories a killed writer left behind (older than a day, so
        never one a running writer still uses). Readers ignore them anyway; this keeps
        the lake tidy and glob-based ad-hoc queries correct."""
        cutoff = time.time() - STALE_OUTPUT_SECONDS
        try:
            entries = self.fs.get_file_info(pafs.FileSelector(self.path(dir_rel), allow_not_found=True))
        except OSError:
            return
        for entry in entries:
            if (entry.type == pafs.FileType.Directory and entry.base_name.startswith(".tmp-")
                    and entry.mtime is not None and entry.mtime.timestamp() < cutoff):
                self._best_effort(self.fs.delete_dir, entry.path)

    def _check_writable(self, dir_rel: str, dataset_rel: str) -> None:
        """Fail before Spark starts, in one line, when a local directory cannot take a new
        entry: Spark's own error would name one of its attempt directories instead."""
        directory = self.path(dir_rel)
        try:
            self.fs.create_dir(directory, recursive=True)
        except OSError as exc:
            raise LakeWriteError(self.uri(dataset_rel), io_failure_reason(exc)) from exc
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=directory))
        except OSError as exc:
            raise LakeWriteError(self.uri(dataset_rel), f"{directory} is not writable ({exc.strerror})") from exc

    def _filesystem_of(self, uri: str) -> tuple[pafs.FileSystem, str]:
        """(filesystem, path) for a URI this class handed out; paths may hold spaces or quotes."""
        if uri.startswith("file://"):
            return pafs.LocalFileSystem(), uri[len("file://"):]
        for scheme in ("s3a://", "s3://"):
            if uri.startswith(scheme):
                return self.fs, uri[len(scheme):]
        raise ValueError(f"not a lake URI: {uri!r}")

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
        """Write through a temporary sibling and a move, so readers never see half a file."""
        parent, name = rel.rsplit("/", 1) if "/" in rel else ("", rel)
        if not self.is_s3:
            self.fs.create_dir(self.path(parent), recursive=True)
            tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:8]}" if parent else f".{name}.{uuid.uuid4().hex[:8]}"
            try:
                with self.fs.open_output_stream(self.path(tmp)) as f:
                    f.write(data)
                self.fs.move(self.path(tmp), self.path(rel))
            except Exception:
                self._best_effort(self.fs.delete_file, self.path(tmp))  # e.g. half written on a full disk
                raise
        else:  # a single S3 PUT replaces an object atomically
            with self.fs.open_output_stream(self.path(rel)) as f:
                f.write(data)

    def size(self, rel: str) -> int:
        return self.fs.get_file_info(self.path(rel)).size

    def sha256(self, rel: str) -> str:
        digest = hashlib.sha256()
        # compression=None: the file's own bytes (pyarrow would un-gzip a .gz by default)
        with self.fs.open_input_stream(self.path(rel), compression=None) as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def list_dir(self, rel: str) -> list[str]:
        """Names (not paths) of the entries directly below rel; [] when it does not exist."""
        if not self.exists(rel):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(rel), recursive=False))
        return sorted(i.base_name for i in infos)

    # -- moves and publishing ---------------------------------------------------
    def move(self, src_rel: str, dst_rel: str) -> None:
        parent = dst_rel.rsplit("/", 1)[0]
        if not self.is_s3:
            self.fs.create_dir(self.path(parent), recursive=True)
        self.fs.move(self.path(src_rel), self.path(dst_rel))

    def delete_dir(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_dir(self.path(rel))

    def has_files(self, uri: str) -> bool:
        """Whether a directory handed out by ``spark_output`` (or below it) holds a file."""
        src_fs, src_dir = self._filesystem_of(uri)
        return any(i.type == pafs.FileType.File
                   for i in src_fs.get_file_info(pafs.FileSelector(src_dir, allow_not_found=True)))

    def parquet_rows(self, uri: str) -> dict[str, int]:
        """Rows of every Parquet file below a directory handed out by ``spark_output``, from
        the files' footers (no data read): ``{path relative to uri: rows}``."""
        import pyarrow.parquet as pq

        src_fs, src_dir = self._filesystem_of(uri)
        out = {}
        for info in src_fs.get_file_info(pafs.FileSelector(src_dir, recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File and info.base_name.endswith(".parquet"):
                with src_fs.open_input_file(info.path) as f:
                    out[info.path[len(src_dir):].lstrip("/")] = pq.read_metadata(f).num_rows
        return out

    def parquet_columns(self, uri: str, columns: list[str]):
        """These columns of every Parquet file below a directory handed out by
        ``spark_output`` (one pyarrow table; for small outputs only)."""
        import pyarrow.parquet as pq

        src_fs, src_dir = self._filesystem_of(uri)
        return pq.read_table(src_dir, filesystem=src_fs, columns=columns, partitioning=None)

    def discard(self, uri: str) -> None:
        """Remove a staging directory handed out by ``spark_output``, if it is there."""
        src_fs, src_dir = self._filesystem_of(uri)
        self._best_effort(src_fs.delete_dir, src_dir)

    @staticmethod
    def _best_effort(operation, path: str) -> None:
        try:
            operation(path)
        except OSError:
            pass  # already gone, or the lake is unwritable: the original error is what matters

    def publish(self, written_uri: str, final_rel: str, manifest: dict) -> None:
        """Publish the single Parquet file Spark wrote under ``written_uri`` as
        ``final_rel/part-00000.parquet``, then the manifest, then ``_SUCCESS``.

        Replacing one file is atomic (a rename on a local disk, one PUT on S3), so a
        reader sees the old partition or the new one, never a mix or half of one.
        ``_SUCCESS`` is removed first and written last, so whenever it is present the
        manifest describes the data file next to it; a crash in between leaves a
        partition without ``_SUCCESS`` (readers that honour it skip it, the others see
        old or new whole rows), which the rerun completes.

        An I/O failure (unwritable or full lake) raises ``LakeWriteError`` with one line
        naming the partition; the staging directory is removed, and so is a data file
        this call added to a partition that did not have one.
        """
        src_fs, src_dir = self._filesystem_of(written_uri)
        try:
            parts = [i for i in src_fs.get_file_info(pafs.FileSelector(src_dir))
                     if i.base_name.startswith("part-") and i.base_name.endswith(".parquet")]
            if len(parts) != 1:
                raise RuntimeError(f"expected one Parquet file under {written_uri}, found {len(parts)}")
            self._replace(src_fs, parts[0].path, final_rel, manifest)
        except OSError as exc:
            raise LakeWriteError(self.uri(final_rel), io_failure_reason(exc)) from exc
        finally:
            self._best_effort(src_fs.delete_dir, src_dir)

    def _replace(self, src_fs: pafs.FileSystem, src_path: str, final_rel: str, manifest: dict) -> None:
        final_data = f"{final_rel}/{DATA_FILE}"
        if not self.is_s3:
            self.fs.create_dir(self.path(final_rel), recursive=True)
        if self.exists(f"{final_rel}/{SUCCESS}"):
            self.fs.delete_file(self.path(f"{final_rel}/{SUCCESS}"))
        first_publish = not self.exists(final_data)
        if type(src_fs) is type(self.fs) and not self.is_s3:
            self.fs.move(src_path, self.path(final_data))
        else:
            pafs.copy_files(src_path, self.path(final_data), source_filesystem=src_fs,
                            destination_filesystem=self.fs)
        try:
            self.write_json(f"{final_rel}/{MANIFEST}", manifest)
            self.write_bytes(f"{final_rel}/{SUCCESS}", b"")
        except Exception:
            if first_publish:  # no partition rather than data without its manifest
                self._best_effort(self.fs.delete_file, self.path(final_data))
            raise
