"""The S3 lake and its IO manager (the aws environment). A module of their own: dagster-aws
takes about half a second to import, which every process of the local environment (each
run, the daemon, the webserver, the command line) would otherwise pay."""

from __future__ import annotations

import datetime as dt
import json

from dagster_aws.s3 import S3Resource

from salespipe_assets.resources.io_manager import LakeIOManager
from salespipe_assets.resources.lake import Lake, LandedFile
from spark_steps.lakefs import MANIFEST, inside_lake


class S3Lake(Lake):
    """``s3://bucket/prefix`` through dagster-aws's S3Resource (region, endpoint and
    credentials from the environment). Fingerprints are ETags: no object is read."""

    s3: S3Resource

    @property
    def bucket(self) -> str:
        return self.root[len("s3://"):].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.root[len("s3://"):].split("/", 1)
        return rest[1].strip("/") + "/" if len(rest) > 1 and rest[1].strip("/") else ""

    def list_landed(self) -> list[LandedFile]:
        client = self.s3.get_client()
        out = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{self.prefix}raw/"):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(self.prefix):]
                if "/" in rel[len("raw/"):]:
                    continue  # only files directly under raw/
                out.append(LandedFile(rel=rel, size=obj["Size"], fingerprint=obj["ETag"].strip('"'),
                                      modified=obj["LastModified"].timestamp()))
        return out

    def _key(self, rel: str) -> str:
        """The S3 key of ``rel``: never outside the lake's prefix."""
        return self.prefix + inside_lake(rel).lstrip("/")

    def _exists(self, rel: str) -> bool:
        key = self._key(rel)
        listed = self.s3.get_client().list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(o["Key"] == key for o in listed.get("Contents", []))

    def read_manifest(self, dataset_rel: str) -> dict | None:
        key = self._key(f"{dataset_rel}/{MANIFEST}")
        try:
            body = self.s3.get_client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.s3.get_client().exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def quarantine(self, rel: str, reason: str) -> str:
        source = self._key(rel)
        client = self.s3.get_client()
        name = rel.rsplit("/", 1)[-1]
        target, n = f"quarantine/{name}", 1
        while self._exists(target):
            n += 1
            target = f"quarantine/{name}.{n}"
        client.copy_object(Bucket=self.bucket, Key=self._key(target),
                           CopySource={"Bucket": self.bucket, "Key": source})
        client.delete_object(Bucket=self.bucket, Key=source)
        body = json.dumps({"file": rel, "reason": reason, "quarantined_to": target,
                           "detected_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        client.put_object(Bucket=self.bucket, Key=self._key(f"{target}.reason.json"), Body=body.encode())
        return target


class S3LakeIOManager(LakeIOManager):
    """The lake IO manager over an S3 lake (what EMR's steps write)."""

    lake: S3Lake
