# The two commands: `make run` and `make test`. Each installs what is missing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install whenever the declared dependencies change.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
LAKE   ?= data/lake
DEMO_START ?= 2024-01-07
DEMO_DAYS  ?= 28
DEMO_SCALE ?= 0.01
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install run test test-heavy dev clean help

help:
	@echo "make run    generate a demo lake (if absent) and run the pipeline end to end"
	@echo "make test   run the test suite"
	@echo "make test-heavy  the heavy tests make test leaves out (the bench at a tiny scale)"
	@echo "make dev    Dagster UI + daemon on 127.0.0.1:3000 over data/lake (sensor on)"
	@echo "make bi     Superset with the dashboards on 127.0.0.1:8088 (after make run)"
	@echo "make clean  remove data/, .dagster_home/ and the venvs"

$(STAMP): pyproject.toml
	@command -v java >/dev/null || { echo "Java 17+ is required for Spark (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install --quiet -e '.[dev]'
	@# Class-data-sharing archive for the local Spark JVM: every run starts ~5 s sooner.
	$(BIN)/python -m spark_steps.jvm_cds --force
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	@test -d $(LAKE)/raw || $(BIN)/salespipe generate --lake $(LAKE) --start $(DEMO_START) --days $(DEMO_DAYS) --scale $(DEMO_SCALE)
	$(BIN)/salespipe run --lake $(LAKE)
	@echo
	@echo "Query it:    $(BIN)/salespipe query --lake $(LAKE) 'SELECT week_start, sum(total_sales_amt) FROM weekly_sales_inventory GROUP BY 1 ORDER BY 1'"
	@echo "Open the UI: make dev   (http://127.0.0.1:3000; the landing sensor then picks up new days by itself)"

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder --durations=25 -m "not heavy"

test-heavy: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder --durations=25 -m heavy

dev: install
	$(BIN)/salespipe dev --lake $(LAKE)

clean:
	rm -rf data .dagster_home .bi_home $(VENV) .venv-bi

include bi/bi.mk
