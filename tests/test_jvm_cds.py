"""How the local Spark driver JVM is started: from the class-data-sharing archive that
``make`` builds (spark_steps/jvm_cds.py), and with the C1 compiler only
(spark_steps/runtime.py) with a full-size code cache. The test session's real JVM is asked
through its MXBean."""

from __future__ import annotations

from spark_steps import jvm_cds
from spark_steps.jvm_options import LARGE_INPUT_BYTES
from spark_steps.runtime import local_driver_java_options


def _vm_option(spark, name: str) -> str:
    jvm = spark.sparkContext._jvm
    bean_class = jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(bean_class)
    return bean.getVMOption(name).getValue()


def test_the_session_jvm_maps_the_archive_built_by_make(spark):
    path = jvm_cds.archive_path()
    assert path is not None and path.is_file(), f"no archive at {path}: `make test` builds it (make install)"
    assert _vm_option(spark, "SharedArchiveFile") == str(path)
    assert _vm_option(spark, "UseSharedSpaces") == "true"  # mapped, not refused as stale


def test_options_without_an_archive_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv(jvm_cds.ENV_VAR, str(tmp_path / "missing.jsa"))
    assert jvm_cds.driver_java_options("-Dx=1") == "-Dx=1"
    monkeypatch.setenv(jvm_cds.ENV_VAR, "off")
    assert jvm_cds.archive_path() is None and jvm_cds.driver_java_options("") == ""
    (tmp_path / "a.jsa").write_bytes(b"x")
    monkeypatch.setenv(jvm_cds.ENV_VAR, str(tmp_path / "a.jsa"))
    assert jvm_cds.driver_java_options("-Dx=1").startswith(f"-Dx=1 -XX:SharedArchiveFile={tmp_path / 'a.jsa'} ")


def test_build_keeps_an_existing_archive(tmp_path, monkeypatch):
    target = tmp_path / "kept.jsa"
    target.write_bytes(b"already here")
    monkeypatch.setenv(jvm_cds.ENV_VAR, str(target))
    assert jvm_cds.build() == target and target.read_bytes() == b"already here"


def test_the_session_jvm_compiles_with_c1_only(spark):
    assert _vm_option(spark, "TieredStopAtLevel") == "1"
    assert _vm_option(spark, "TieredCompilation") == "true"


def test_the_session_jvm_keeps_a_full_size_code_cache(spark):
    # C1 alone would shrink it to 48 MB: this session's JVM, which runs every in-process
    # test of its worker, once filled that and Spark's scheduler hung on the InternalError.
    assert int(_vm_option(spark, "ReservedCodeCacheSize")) == 240 * 1024 * 1024


def test_a_configured_jit_setting_wins(monkeypatch):
    monkeypatch.setenv(jvm_cds.ENV_VAR, "off")
    cache = "-XX:ReservedCodeCacheSize=240m"
    assert local_driver_java_options("-Dx=1") == f"-Dx=1 -XX:TieredStopAtLevel=1 {cache}"
    assert local_driver_java_options("-XX:TieredStopAtLevel=4") == f"-XX:TieredStopAtLevel=4 {cache}"
    assert local_driver_java_options("-XX:-TieredCompilation") == f"-XX:-TieredCompilation {cache}"
    assert local_driver_java_options("-XX:ReservedCodeCacheSize=64m") == \
        "-XX:ReservedCodeCacheSize=64m -XX:TieredStopAtLevel=1"


def _imported_modules(module) -> set[str]:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    found = set()
    for node in ast.walk(tree):  # lazy imports inside functions count too
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_jvm_options_and_the_archive_builder_do_not_import_each_other():
    from spark_steps import jvm_options, runtime

    assert "spark_steps.jvm_cds" not in _imported_modules(runtime)
    assert not {"spark_steps.jvm_cds", "spark_steps.runtime"} & _imported_modules(jvm_options)
    assert jvm_cds.driver_java_options is jvm_options.cds_java_options  # one definition of the archive's options


def test_a_large_landed_input_gets_the_tiered_jit(monkeypatch):
    # measured (jvm_options): C1 alone wins on a demo day, tiered C1+C2 on a scale-1 file
    monkeypatch.setenv(jvm_cds.ENV_VAR, "off")
    cache = "-XX:ReservedCodeCacheSize=240m"
    assert local_driver_java_options("", input_bytes=LARGE_INPUT_BYTES - 1) == f"-XX:TieredStopAtLevel=1 {cache}"
    assert local_driver_java_options("", input_bytes=LARGE_INPUT_BYTES) == cache
    assert local_driver_java_options("-XX:TieredStopAtLevel=1", input_bytes=LARGE_INPUT_BYTES) == \
        f"-XX:TieredStopAtLevel=1 {cache}"


def test_the_session_builder_is_given_the_jit_of_its_input(monkeypatch):
    # the options a new local JVM would be started with (no JVM is started here)
    from spark_steps.runtime import _classic_builder

    monkeypatch.setenv(jvm_cds.ENV_VAR, "off")
    small = _classic_builder("t", "local[1]", {}, input_bytes=140_000)._options["spark.driver.extraJavaOptions"]
    large = _classic_builder("t", "local[1]", {}, input_bytes=16 << 20)._options["spark.driver.extraJavaOptions"]
    assert "TieredStopAtLevel=1" in small and "Tiered" not in large
