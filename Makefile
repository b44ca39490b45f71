# The two commands: `make run` and `make test`. Each installs what is missing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Spark 4 runs on Java 17 or 21. Without one on the machine (JAVA_HOME or PATH), the `jdk`
# extra installs a Java 21 runtime into .venv and spark_steps/java_home.py points Spark at it.
MACHINE_JAVA := $(shell for j in $${JAVA_HOME:+"$$JAVA_HOME/bin/java"} java; do $$j -version 2>&1 | grep -qE 'version "(17|21)[."]' && { echo yes; break; }; done)
comma  := ,
EXTRAS := dev$(if $(MACHINE_JAVA),,$(comma)jdk)
# Re-install whenever the declared dependencies (or the need for the pip JDK) change.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)$(if $(MACHINE_JAVA),,-jdk)
# Run a Spark command with JAVA_HOME set to the pip JDK when the machine has no Java 17/21.
WITH_JAVA = jh="$$($(BIN)/python -m spark_steps.java_home)" && { [ -z "$$jh" ] || export JAVA_HOME="$$jh"; } &&
LAKE   ?= data/lake
DEMO_START ?= 2024-01-07
DEMO_DAYS  ?= 28
DEMO_SCALE ?= 0.01
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install run test test-heavy dev clean help

help:
	@echo "make run    generate a demo lake (if absent) and run the pipeline end to end"
	@echo "make test   run the test suite"
	@echo "make test-heavy  the heavy tests make test leaves out (the bench at a tiny scale, a standalone cluster, real SIGKILL and full-disk variants); CI runs both"
	@echo "make dev    Dagster UI + daemon on 127.0.0.1:3000 over data/lake (sensor on)"
	@echo "make bi     Superset with the dashboards on 127.0.0.1:8088 (after make run)"
	@echo "make clean  remove data/, .dagster_home/ and the venvs"

$(STAMP): pyproject.toml
	@test -n "$(MACHINE_JAVA)" || echo "No Java 17 or 21 on this machine: installing a Java 21 runtime into $(VENV) (pip extra 'jdk')"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	@# Class-data-sharing archive for the local Spark JVM: every run starts ~5 s sooner.
	@# The pip JDK is trimmed (no base CDS archive to extend): Spark then starts the usual way.
	$(if $(MACHINE_JAVA),$(BIN)/python -m spark_steps.jvm_cds --force,@echo "pip JDK: no CDS archive")
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	@test -d $(LAKE)/raw || $(BIN)/salespipe generate --lake $(LAKE) --start $(DEMO_START) --days $(DEMO_DAYS) --scale $(DEMO_SCALE)
	$(WITH_JAVA) $(BIN)/salespipe run --lake $(LAKE)
	@echo
	@echo "Query it:    $(BIN)/salespipe query --lake $(LAKE) 'SELECT week_start, sum(total_sales_amt) FROM weekly_sales_inventory GROUP BY 1 ORDER BY 1'"
	@echo "Open the UI: make dev   (http://127.0.0.1:3000; the landing sensor then picks up new days by itself)"

test: install
	$(WITH_JAVA) $(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder --durations=25 -m "not heavy"

test-heavy: install
	$(WITH_JAVA) $(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder --durations=25 -m heavy

dev: install
	$(WITH_JAVA) $(BIN)/salespipe dev --lake $(LAKE)

clean:
	rm -rf data .dagster_home .bi_home $(VENV) .venv-bi

include bi/bi.mk
