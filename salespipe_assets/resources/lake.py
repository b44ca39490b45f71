"""The lake as a resource: where datasets live and what has landed.

``Lake`` is the interface the assets and the sensor use; ``LocalLake`` is a directory.
Rows never pass through here: Spark and DuckDB read the paths it hands out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import dagster as dg

from spark_steps.contract import LANDING_NAME, TABLES
from spark_steps.lakefs import MANIFEST, LakeFS, inside_lake

_CANDIDATE_NAME = re.compile(r"^(?P<table>" + "|".join(TABLES) + r")_(?P<date>[^/]*?)\.csv(\.gz)?\Z")
# Names an uploader conventionally writes under before renaming into place: never listed.
_IN_FLIGHT_NAME = re.compile(r"^\.|\.(tmp|part|_COPYING_)\Z")


def printable(text: str) -> str:
    """``text`` on one line: control characters escaped as repr() does (a name ending in a
    newline must not print over two lines)."""
    return "".join(repr(c)[1:-1] if _is_control(c) else c for c in text)


def _is_control(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Zl", "Zp")


def _name_problem(name: str) -> str | None:
    """Why a landing-like name cannot be taken, before its date is even looked at."""
    controls = [c for c in name if _is_control(c)]
    if controls:
        shown = ", ".join(dict.fromkeys(repr(c) for c in controls))
        return f"the file name {name!r} contains a control character ({shown}): rename it"
    return None


@dataclass(frozen=True)
class LandedFile:
    rel: str  # path relative to the lake root, e.g. raw/sales_2024-01-07.csv.gz
    size: int
    fingerprint: str  # content checksum (local) or ETag (S3)
    modified: float = 0.0  # seconds since the epoch
    # False while a local file may still be written (changed within the quiet period);
    # such a file has no fingerprint yet
    settled: bool = True
    problem: str | None = None  # why the entry can never be staged (e.g. a link out of the lake)


@dataclass
class DayFiles:
    day: str
    files: dict[str, LandedFile] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [t for t in TABLES if t not in self.files]

    @property
    def complete(self) -> bool:
        return not self.missing and not self.problems

    @property
    def fingerprint(self) -> str:
        """Changes whenever any of the day's five files changes content."""
        joined = "|".join(f"{t}:{self.files[t].fingerprint}" for t in TABLES if t in self.files)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]


@dataclass
class LandingScan:
    days: dict[str, DayFiles]
    bad_names: dict[str, str]  # rel path -> why it cannot be a landed file

    @property
    def complete_days(self) -> list[DayFiles]:
        return [d for _, d in sorted(self.days.items()) if d.complete]

    @property
    def incomplete_days(self) -> list[DayFiles]:
        return [d for _, d in sorted(self.days.items()) if not d.complete]


def _valid_date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        dt.date.fromisoformat(text)
        return True
    except ValueError:
        return False


class Lake(dg.ConfigurableResource):
    """A lake rooted at ``root``; subclasses say how objects are listed and fingerprinted."""

    root: str

    @cached_property
    def fs(self) -> LakeFS:
        return LakeFS(self.root)

    def uri(self, rel: str) -> str:
        """Where Spark and DuckDB find ``rel``."""
        return self.fs.uri(rel)

    def list_landed(self) -> list[LandedFile]:
        raise NotImplementedError

    def read_manifest(self, dataset_rel: str) -> dict | None:
        return self.fs.read_json(f"{dataset_rel}/{MANIFEST}")

    def scan_landing(self, files: list[LandedFile] | None = None) -> LandingScan:
        """Group landed files into business days; ``files`` defaults to a fresh listing."""
        days: dict[str, DayFiles] = {}
        bad: dict[str, str] = {}
        for f in self.list_landed() if files is None else files:
            name = f.rel.rsplit("/", 1)[-1]
            m = _CANDIDATE_NAME.match("".join(c for c in name if not _is_control(c)))
            if not m:
                continue  # not a landing file at all (README, _SUCCESS, ...): left alone
            table, date = m.group("table"), m.group("date")
            if problem := _name_problem(name) or f.problem:
                bad[f.rel] = problem
                continue
            if not _valid_date(date) or not LANDING_NAME.match(name):
                bad[f.rel] = f"the date in the file name, {date!r}, is not a valid YYYY-MM-DD date"
                continue
            day = days.setdefault(date, DayFiles(date))
            if not f.settled:
                day.problems.append(f"{printable(f.rel)} is still being written "
                                    f"(changed {max(0.0, time.time() - f.modified):.0f} s ago)")
            if table in day.files:
                day.problems.append(f"two files for {table}: {day.files[table].rel} and {f.rel}")
            else:
                day.files[table] = f
        return LandingScan(days=days, bad_names=bad)

    def day_files(self, day: str) -> DayFiles:
        return self.scan_landing().days.get(day, DayFiles(day))

    def quarantine(self, rel: str, reason: str) -> str:
        """Move a landed file aside with a JSON reason; return where it went."""
        name = printable(inside_lake(rel).rsplit("/", 1)[-1])
        target, n = f"quarantine/{name}", 1
        while self.fs.exists(target) or Path(self.fs.path(target)).is_symlink():
            n += 1
            target = f"quarantine/{name}.{n}"
        self.fs.move(rel, target)
        self.fs.write_json(f"{target}.reason.json", {
            "file": rel, "reason": reason, "quarantined_to": target,
            "detected_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        })
        return target


_checksums: dict[tuple[str, int, int], str] = {}


class LocalLake(Lake):
    """A directory. Fingerprints are SHA-256 of the content, cached per (path, size, mtime).

    A file may be written at its final name: it counts as landed only once its size and
    modification time have stayed the same for ``settle_seconds`` (None: the setting
    ``SALESPIPE_SETTLE_SECONDS``), judged from the listing's modification time, so nothing
    ever sleeps. Names in flight (dot-files, ``*.tmp``, ``*.part``, ``*._COPYING_``) are
    not listed, and a symbolic link is listed only when it resolves inside the lake.
    """

    settle_seconds: float | None = None

    @property
    def quiet_period(self) -> float:
        if self.settle_seconds is not None:
            return self.settle_seconds
        from salespipe_assets.settings import Settings

        return Settings.from_env().settle_seconds

    def list_landed(self) -> list[LandedFile]:
        raw = Path(self.fs.path("raw"))
        if not raw.is_dir():
            return []
        lake = Path(self.fs.path("")).resolve()
        settled_before = time.time() - self.quiet_period
        out = []
        for p in sorted(raw.iterdir()):
            if _IN_FLIGHT_NAME.search(p.name):
                continue
            rel = f"raw/{p.name}"
            if p.is_symlink() and (outside := _link_out_of(p, lake)):
                # never opened: the link itself is refused (quarantined with this reason)
                out.append(LandedFile(rel=rel, size=0, fingerprint="", modified=p.lstat().st_mtime,
                                      problem=outside))
                continue
            if not p.is_file():
                continue
            st = p.stat()
            if st.st_mtime > settled_before:
                out.append(LandedFile(rel=rel, size=st.st_size, fingerprint="", modified=st.st_mtime,
                                      settled=False))
                continue
            key = (str(p), st.st_size, st.st_mtime_ns)
            if key not in _checksums:
                _checksums[key] = self.fs.sha256(rel)
            out.append(LandedFile(rel=rel, size=st.st_size, fingerprint=_checksums[key], modified=st.st_mtime))
        return out


def _link_out_of(link: Path, lake: Path) -> str | None:
    """Why the symbolic link ``link`` may not be read, or None when it stays inside ``lake``."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        return f"a symbolic link to {str(link.readlink())!r} that leads nowhere: not staged"
    if not target.is_relative_to(lake):
        return f"a symbolic link to {str(target)!r}, outside the lake: not staged"
    return None
