# Two commands for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when the package definition or its sources change.
$(STAMP): $(BIN)/python setup.py $(shell find transforms pipelines schemas -type f -not -path '*/__pycache__/*')
	$(BIN)/pip install --quiet '.[test]'
	touch $(STAMP)

# The demo also runs the LM tier on a 10 % sample (about 20 s on 2 cores) so that its columns show.
demo: $(STAMP)
	$(BIN)/corpus-audit demo --output out/demo --overwrite --lm-detector sample --lm-sample-rate 0.1

# Debian's chromium and its driver for the report's browser test, installed only when missing.
browser:
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# The suite runs from a copy of the checkout's files in an empty temporary folder, so a test that
# reaches outside the repository (a data folder beside the checkout) fails here as on a fresh clone.
test: $(STAMP) browser
	@set -e; bare=$$(mktemp -d); trap 'rm -rf "$$bare"' EXIT; \
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$$bare" 2>/dev/null || true; \
	else cp -r . "$$bare"; rm -rf "$$bare/$(VENV)"; fi; \
	echo "tests run from $$bare (a copy of the checkout with nothing beside it)"; \
	cd "$$bare/tests" && $(CURDIR)/$(BIN)/python -m pytest -q -n 2 --dist loadfile .

bench: $(STAMP)
	$(BIN)/pip install --quiet '.[bench]'
	taskset -c 0 $(BIN)/python benchmarks/detectors_bench.py --lm
	$(BIN)/python benchmarks/run.py --sizes 10000,100000 --workers 1,2
	$(BIN)/python benchmarks/hostile_docs.py

clean:
	rm -rf $(VENV) out build *.egg-info
