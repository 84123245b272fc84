# The two set-up commands (see README): `make demo` and `make test`.
# Both install everything they need into ./.venv with uv, bootstrapping uv itself
# from PyPI when it is not on PATH.

UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: demo test sync uv lint typecheck unit

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"

sync: uv
	$(UV) sync --locked

# Runs the demo suite on the embedded store (./.tracescore). Exits 1 on purpose:
# the case capital-atlantis fails in both variants to show what a failure looks like.
demo: sync
	$(UV) run --locked tracescore run configs/demo/eval.yaml

lint: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

typecheck: sync
	$(UV) run --locked mypy

unit: sync
	$(UV) run --locked pytest

test: lint typecheck unit
