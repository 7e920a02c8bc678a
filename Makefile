PYTHON ?= python3
STAMP := .setup.stamp

.PHONY: setup test quickstart perf

# `setup` re-runs only when the install recipe changes; `make -B setup` forces it.
setup: $(STAMP)
$(STAMP): pyproject.toml setup.py scripts/setup.sh
	PYTHON=$(PYTHON) bash scripts/setup.sh
	touch $(STAMP)

test: setup
	$(PYTHON) -m pytest -q

quickstart: setup
	polymodal quickstart

perf: setup
	for script in benchmarks/perf/*.py; do echo "== $$script"; $(PYTHON) $$script || exit 1; done
