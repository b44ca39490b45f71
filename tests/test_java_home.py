"""Spark on a machine without Java (issue 16, point 6): the JDK from the ``jdk`` extra.

The detection is tested on PATHs made here (a directory of symlinks to what a shell needs,
with or without the machine's ``java``), and Spark is really started, in a child process
whose PATH has no ``java`` and no JAVA_HOME: it must run on the pip JDK (Java 21).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404  # fixed argument lists
import sys
from pathlib import Path

import pytest

from spark_steps import java_home
from spark_steps.java_home import NoJava, java_major, resolve_java_home

MACHINE_JAVA = shutil.which("java")
pip_jdk = pytest.mark.skipif(java_home.pip_jdk_java() is None,
                             reason="the jdk extra is not installed (pip install -e '.[jdk]')")


def _path_without_java(tmp_path: Path) -> str:
    """A PATH of symlinks to the few tools a shell script and Spark's launcher use, no java."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "bash", "env", "dirname", "basename", "uname", "ps", "cat", "head", "rm", "mkdir", "sed",
                 "grep", "tr", "ls", "readlink", "sleep"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    assert shutil.which("java", path=str(bin_dir)) is None
    return str(bin_dir)


def _fake_java(tmp_path: Path, version_line: str) -> Path:
    java = tmp_path / "fakejdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return java


def test_java_major_reads_the_version_line(tmp_path):
    assert java_major(_fake_java(tmp_path, 'openjdk version "21.0.8" 2025-07-15 LTS')) == 21
    assert java_major(tmp_path / "nowhere" / "java") is None


def test_old_style_version_is_its_minor(tmp_path):
    assert java_major(_fake_java(tmp_path, 'java version "1.8.0_392"')) == 8


@pytest.mark.skipif(MACHINE_JAVA is None, reason="no java on this machine's PATH")
def test_the_machines_java_17_or_21_is_used_as_it_is(tmp_path):
    assert java_major(MACHINE_JAVA) in (17, 21)
    env = {"PATH": str(Path(MACHINE_JAVA).parent)}
    assert resolve_java_home(env, shim_dir=tmp_path / "shim") is None  # Spark finds it itself


@pytest.mark.skipif(MACHINE_JAVA is None, reason="no java on this machine's PATH")
def test_a_java_home_of_an_old_java_is_replaced_by_the_working_java_on_path(tmp_path):
    old = _fake_java(tmp_path, 'openjdk version "11.0.21" 2023-10-17')
    env = {"JAVA_HOME": str(old.parent.parent), "PATH": str(Path(MACHINE_JAVA).parent)}
    home = resolve_java_home(env, shim_dir=tmp_path / "shim")
    assert home == str(Path(os.path.realpath(MACHINE_JAVA)).parent.parent)
    assert java_major(Path(home) / "bin" / "java") in (17, 21)


@pip_jdk
def test_no_java_on_path_gives_the_pip_jdk_through_a_shim(tmp_path):
    env = {"PATH": _path_without_java(tmp_path)}
    home = resolve_java_home(env, shim_dir=tmp_path / "shim")
    assert home == str(tmp_path / "shim")
    assert java_major(Path(home) / "bin" / "java") == 21
    # The shim drops the one module the trimmed runtime lacks and passes everything else on.
    out = subprocess.run([str(Path(home) / "bin" / "java"), "--add-modules=jdk.incubator.vector",
                          "-Dx=a b", "-XshowSettings:properties", "-version"],  # nosec B603
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "x = a b" in out.stderr


@pip_jdk
def test_an_unsupported_java_on_path_gives_the_pip_jdk(tmp_path):
    old = _fake_java(tmp_path, 'openjdk version "11.0.21" 2023-10-17')
    env = {"PATH": f"{old.parent}:{_path_without_java(tmp_path)}"}
    assert resolve_java_home(env, shim_dir=tmp_path / "shim") == str(tmp_path / "shim")


def test_no_java_and_no_pip_jdk_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(java_home, "pip_jdk_java", lambda: None)
    with pytest.raises(NoJava, match=r"Spark needs Java 17 or 21.*pip install -e '\.\[jdk\]'"):
        resolve_java_home({"PATH": _path_without_java(tmp_path)}, shim_dir=tmp_path / "shim")


_SPARK_CHILD = """
import json, os
from spark_steps.java_home import ensure_java_home
home = ensure_java_home()
from spark_steps.runtime import spark_session
spark = spark_session("java-home-test", "local[1]")
total = spark.range(10).selectExpr("sum(id) AS s").collect()[0]["s"]
version = spark.sql("SELECT java_method('java.lang.System', 'getProperty', 'java.version') AS v").collect()[0]["v"]
spark.stop()
print(json.dumps({"home": home, "total": total, "java_version": version}))
"""


@pip_jdk
def test_spark_starts_on_the_pip_jdk_when_the_machine_has_no_java(tmp_path):
    env = {"PATH": _path_without_java(tmp_path), "HOME": str(tmp_path), "SALESPIPE_SPARK_CDS": "off",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", _SPARK_CHILD], capture_output=True, text=True,  # nosec B603
                         timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["home"] == str(java_home.SHIM_DIR)
    assert result["total"] == 45  # 0 + 1 + ... + 9
    assert result["java_version"].startswith("21.")
    assert "JAVA_HOME" not in os.environ or os.environ["JAVA_HOME"] != result["home"]  # the child's alone


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_installs_the_jdk_extra_only_when_the_machine_has_no_java(tmp_path):
    """`make -n install` (nothing is run): the jdk extra, no CDS archive, without java; as before with it."""
    root = Path(__file__).resolve().parent.parent
    no_java = _path_without_java(tmp_path)
    for tool in ("make", "sha1sum", "cut"):
        (Path(no_java) / tool).symlink_to(shutil.which(tool))
    plans = {}
    for name, path in (("without", no_java), ("with", f"{no_java}:{Path(MACHINE_JAVA).parent}" if MACHINE_JAVA else None)):
        if path is None:
            continue
        out = subprocess.run(["make", "-n", "-B", "install"], cwd=root, capture_output=True, text=True,  # nosec B603 B607
                             timeout=60, env={"PATH": path, "HOME": str(tmp_path)})
        assert out.returncode == 0, out.stderr
        plans[name] = out.stdout
    assert "pip install --quiet -e '.[dev,jdk]'" in plans["without"]
    assert "spark_steps.jvm_cds" not in plans["without"]
    if "with" in plans:
        assert "pip install --quiet -e '.[dev]'" in plans["with"] and "spark_steps.jvm_cds --force" in plans["with"]
