# Set-up and entry points. `make demo` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-all clean

install: $(STAMP)

# SpikingJelly 2.0.0 (the ann2snn peer, bsnn_bindsnet.interop.spikingjelly) goes in with --no-deps:
# its declared dependencies would replace torch; loguru and requests are the imports it needs
$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,peers]'
	$(PY) -m pip install --quiet -c constraints.txt loguru requests
	$(PY) -m pip install --quiet --no-deps -c constraints.txt spikingjelly==2.0.0
	touch $(STAMP)

# results/demo is the demo's own folder: each `make demo` replaces the previous one
demo: $(STAMP)
	$(PY) -m experiments.demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf results build *.egg-info
