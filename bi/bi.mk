# Superset dashboards as code (included from the main Makefile: `include bi/bi.mk`).
#   make bi        install Superset in .venv-bi if needed, bootstrap it from bi/, serve 127.0.0.1:8088
#   make bi-down   stop it (by the PID in .bi_home/superset.pid)
#   make test-bi   the BI tests (a throwaway Superset on a free port; headless Chromium if installed)
BI_TEST_STAMP := $(VENV)/.bi-test-$(shell cat bi/requirements-test-bi.txt | sha1sum | cut -c1-12)
# The tests use the warehouse `make run` built, if there is one, else a tiny one they write.
BI_TEST_WAREHOUSE ?= $(wildcard $(LAKE)/warehouse.duckdb)

.PHONY: bi bi-down bi-install test-bi

bi: install
	@test -f $(LAKE)/warehouse.duckdb || test -n "$$SALESPIPE_BI_WAREHOUSE_URI" || \
		{ echo "no warehouse at $(LAKE)/warehouse.duckdb: run 'make run' first"; exit 1; }
	SALESPIPE_WAREHOUSE=$(abspath $(LAKE))/warehouse.duckdb $(BIN)/python -m salespipe_assets.bi up

bi-down: install
	$(BIN)/python -m salespipe_assets.bi down

bi-install: install
	$(BIN)/python -m salespipe_assets.bi install

$(BI_TEST_STAMP): bi/requirements-test-bi.txt
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install --quiet -r bi/requirements-test-bi.txt
	@rm -f $(VENV)/.bi-test-* && touch $@

test-bi: install bi-install $(BI_TEST_STAMP)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 SALESPIPE_BI_TEST_WAREHOUSE=$(BI_TEST_WAREHOUSE) \
		$(BIN)/python -m pytest tests_bi
