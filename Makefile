# Set-up, main job and tests. Every target installs what it needs, so each works on a fresh machine.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
# Extra pip arguments for torch only, e.g. --index-url https://download.pytorch.org/whl/cpu on a machine whose pip
# would otherwise pick a CUDA build.
TORCH_PIP_ARGS ?=

.PHONY: setup run test bench

# torch first, pinned: the CPU build of 2.13.0; a looser pin would fetch a multi-GB CUDA build.
setup:
	$(PIP) install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PIP) install --quiet -e '.[dev]'

run: setup
	esd-gym data fetch ml-100k
	esd-gym compare --config configs/compare/main.yaml

test: setup
	$(PYTHON) -m pytest

bench: setup
	esd-gym bench simulator
	esd-gym bench dispatch --quick
	esd-gym bench env
