# Fresh clone -> `make demo` and `make test` with nothing installed by hand. Every target is idempotent.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
# torch/torchvision pinned to the builds this project is tested with (they install from the machine's wheel cache).
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo demo-seeds demo-paired demo-fractions demo-translators test test-gpu bench bench-full lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/run-uda --preset demo --output demo-out/demo

demo-seeds: setup
	$(BIN)/run-uda --preset demo --seeds 0,1,2 --output demo-out/seeds

# The method studies on the built-in synthetic data (times in the README, "Studies").
demo-paired: setup
	$(BIN)/run-uda --study photo-to-label --preset demo --output demo-out/paired

demo-fractions: setup
	$(BIN)/run-uda --study label-fraction --preset demo --output demo-out/fractions

demo-translators: setup
	$(BIN)/run-uda --study translators --preset demo --output demo-out/translators

# Tests run in one worker process per CPU (pytest-xdist), idle workers taking tests queued for busy ones.
test: setup
	$(BIN)/pytest -q -m "not gpu" -n auto --dist worksteal

# GPU tests need tensorrt and pycuda (pycuda compiles against the CUDA toolkit) and ONNX Runtime's GPU build; elsewhere
# they skip with the reason. onnxruntime (CPU, a base dependency) and onnxruntime-gpu install the same module: remove
# the CPU one and reinstall the GPU one over the files they share. The pip tensorrt wheel keeps libnvinfer in its
# tensorrt_libs package, where ONNX Runtime's TensorRT provider does not look: put it on LD_LIBRARY_PATH.
test-gpu: setup
	$(PY) -m pip install --quiet -e '.[dev,tensorrt,gpu]'
	if $(PY) -m pip show --quiet onnxruntime >/dev/null 2>&1; then \
	  $(PY) -m pip uninstall --quiet -y onnxruntime && \
	  $(PY) -m pip install --quiet --force-reinstall --no-deps onnxruntime-gpu; fi
	TRT_LIBS=$$($(PY) -c "import importlib.util as u, os; s = u.find_spec('tensorrt_libs'); \
	  print(os.path.dirname(s.origin) if s and s.origin else '')"); \
	LD_LIBRARY_PATH=$$TRT_LIBS$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH} $(BIN)/pytest -q -m gpu

# Throughput benchmark report in bench-results/ (report.md, report.json, figures): about 35-60 min on 2 idle CPU cores
# (26 min 30 s on 2026-12-01 before the Ray stage (2.5 min) and the INT8 stage (quantization, speed pass and INT8
# runs; not yet timed on an idle machine); 44 min 46 s on a slower machine).
bench: setup
	$(BIN)/bench-throughput --suite standard --output bench-results

# bench plus full-resolution sweeps (GTA5 1912x1052, Cityscapes 2048x1024): about 15 min more on 2 CPU cores.
bench-full: setup
	$(BIN)/bench-throughput --suite full --output bench-results/full

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf demo-out bench-results .pytest_cache
