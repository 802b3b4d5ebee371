# rfr: two commands on a fresh clone.
#   make run    set everything up, build the models, build the demo terminal once, open the application on it
#               (make run-oversight opens the demo's oversight instead, in the oversight's application)
#   make test   set everything up, build the models, run lint, types and the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RFR_DATA ?= $(abspath ../shared/data)
export RFR_DATA

.PHONY: setup models run run-oversight test lint bench reference clean system-tools

# The virtualenv, from the project's own files only (pinned by constraints.txt).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[models,test,central]'
	touch $@

setup: $(VENV)/.installed

# Build the OpenVINO models from dlib's CC0 files when missing; always verify them against the manifest.
models: setup
	$(BIN)/python scripts/build_models.py

# The demo terminal (scripts/demo.py), built once into demo/ (git-ignored): users for each role, libraries enrolled
# from LFW's labelled photographs, cases in several states. Then the application, opened on it.
run: models
	$(BIN)/python scripts/demo.py --folder demo
	RFR_CONFIG=$(CURDIR)/demo/terminal.yaml $(BIN)/rfr

# The demo's oversight (built with the demo terminal, in demo/oversight/), opened in the oversight's application with
# the auditor's bundle waiting in demo/media/. The file chooser offers removable media and the home folder: HOME is
# demo/media here so that folder is the one offered. The keys beside the workspace are the demo's shortcut only.
OVERSIGHT_DEMO := $(CURDIR)/demo/oversight
run-oversight: models
	$(BIN)/python scripts/demo.py --folder demo
	@test -d $(OVERSIGHT_DEMO)/workspace || { echo "demo/ has no oversight: .venv/bin/python scripts/demo.py --rebuild"; exit 2; }
	HOME=$(CURDIR)/demo/media $(BIN)/rfr-oversight --workspace $(OVERSIGHT_DEMO)/workspace \
		--key-file $(OVERSIGHT_DEMO)/keys/workspace.key --audit-key-file $(OVERSIGHT_DEMO)/keys/audit-signing.key \
		--private-key $(OVERSIGHT_DEMO)/keys/oversight.key

lint: setup
	$(BIN)/ruff check engine rfr_tui scripts tests
	$(BIN)/ruff format --check engine rfr_tui scripts tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# Debian tools the tests drive, installed when missing: strace (tests/security/test_no_network.py
# watches the terminal's system calls) and tmux (the application's tests run it in a real terminal).
system-tools:
	@missing=""; for tool in strace tmux; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi

# On every core, at most 4 workers (each loads the face models once); `.venv/bin/pytest` alone runs serially.
test: models lint system-tools
	$(BIN)/pytest -n auto --maxprocesses 4

# The evaluation kit (issue 17), for anyone who must sign the figures: installs the eval extra (matplotlib,
# scikit-learn), builds and installs the out-of-sample calibration (and the policy version naming it), then
# measures label-free normalisation, degraded probes and, last so its page links the others, equity across
# thresholds and 1:N on held-out LFW people. Writes docs/evaluation.md and docs/evaluation/. About 1.5 h on 2 cores.
.PHONY: evaluate
evaluate: models
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[models,test,central,eval]'
	$(BIN)/python scripts/calibrate.py --install
	$(BIN)/python scripts/evaluate_normalisation.py
	$(BIN)/python scripts/evaluate_degraded.py --install
	$(BIN)/python scripts/evaluate.py

# Development only: dlib and face_recognition, for reference fixtures and side-by-side benchmarks.
reference: setup
	$(BIN)/python -m pip install --quiet -c constraints.txt dlib-bin Pillow click
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt face_recognition

clean:
	rm -rf $(VENV) models/*.xml models/*.bin models/*.npz
