# sysevents: `make dev` runs the whole pipeline locally; `make test` installs what it needs and runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
TASKS_VENV ?= .venv-tasks
TASKS_STAMP := $(TASKS_VENV)/.installed
TF_SCHEMA := $(VENV)/share/terraform-schema
TF_SCHEMA_STAMP := $(TF_SCHEMA)/.built
# pytest-xdist workers: each starts its own local stack (emulators and functions) once and runs whole test
# files, so a file's fixtures and ordering hold. Most integration time is waiting on scaled timers and
# receivers, so two workers nearly halve the run on two cores. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

.PHONY: install dev test unit integration lint fmt bench lock clean checkov browser

install: $(STAMP) $(TASKS_STAMP) $(TF_SCHEMA_STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements/lock.txt -e '.[dev]'
	touch $@

# The Google and archive provider schemas the Terraform tests validate and plan against, built from the
# pinned CDKTF wheels' jsii assemblies (the wheels are downloaded, read and deleted; nothing at test time).
$(TF_SCHEMA_STAMP): requirements/terraform-schema.txt tests/terraform/tfschema.py tests/terraform/tfprovider.py $(STAMP)
	rm -rf $(TF_SCHEMA) && mkdir -p $(TF_SCHEMA)/wheels
	$(BIN)/python -m pip download -q --disable-pip-version-check --no-deps --require-hashes -r requirements/terraform-schema.txt -d $(TF_SCHEMA)/wheels
	$(BIN)/python tests/terraform/tfschema.py $(TF_SCHEMA)/wheels/cdktf_cdktf_provider_google-*.whl $(TF_SCHEMA)/google.json
	$(BIN)/python tests/terraform/tfschema.py $(TF_SCHEMA)/wheels/cdktf_cdktf_provider_archive-*.whl $(TF_SCHEMA)/archive.json
	$(BIN)/python tests/terraform/tfprovider.py --compile $(TF_SCHEMA)/google.json
	$(BIN)/python tests/terraform/tfprovider.py --compile $(TF_SCHEMA)/archive.json
	rm -rf $(TF_SCHEMA)/wheels
	touch $@

# The Cloud Tasks emulator (the delay queue of the local stack and the tests) needs protobuf<5: its own venv.
$(TASKS_STAMP): requirements/tasks-emulator.txt
	$(PYTHON) -m venv $(TASKS_VENV)
	$(TASKS_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements/tasks-emulator.txt
	touch $@

dev: install  ## start emulators + functions, seed demo jobs, publish sample events, show deliveries (Ctrl-C stops)
	$(BIN)/sysevents dev

test: install lint checkov browser  ## every test: unit, integration against the emulators, end to end
	$(PYTEST)

browser:  ## Debian's chromium for the console's browser tests (Playwright drives it; no browser download)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else echo "The console tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

unit: install  ## every offline test (no emulator): the tests not marked integration
	$(PYTEST) -m "not integration"

integration: install browser  ## the tests that run against the local stack (emulators and functions)
	$(PYTEST) -m integration

lint: install
	$(BIN)/ruff check shared functions tests bench
	$(BIN)/ruff format --check shared functions tests bench

fmt: install
	$(BIN)/ruff format shared functions tests bench
	$(BIN)/ruff check --fix shared functions tests bench

bench: install  ## print performance figures (not asserted anywhere)
	$(BIN)/python bench/run.py

lock:  ## refresh requirements/lock.txt from a fresh resolve of pyproject.toml
	rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip freeze --exclude-editable > requirements/lock.txt
	touch $(STAMP)

checkov: $(CHECKOV_STAMP)  ## policy scan of terraform/ (offline); checkov has its own venv: its deps conflict with ours
	$(CHECKOV_VENV)/bin/checkov --config-file terraform/.checkov.yaml

$(CHECKOV_STAMP): requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements/checkov.txt
	touch $@

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(TASKS_VENV) .sysevents-dev
