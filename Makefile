# The two commands of the README, and the pieces they are made of.
#   make demo   set up .venv, build, run the demo on built-in data
#   make test   set up .venv with the test and docs extras, build, C unit tests under ASan+UBSan, pytest
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
CC      ?= gcc
CFLAGS_SAN := -std=c11 -ffp-contract=fast -fno-trapping-math -O1 -g -fopenmp -fsanitize=address,undefined -fno-sanitize-recover=all \
              -fno-omit-frame-pointer -Wall -Wextra -Werror -Icsrc
CORE_SRC := $(wildcard csrc/*.c csrc/sinkhorn/*.c)
CTESTS   := $(patsubst csrc/tests/%.c,build/ctest/%,$(wildcard csrc/tests/test_*.c))

.PHONY: demo test venv install install-test install-docs docs docs-html docs-check ctest pytest valgrind fuzz fuzz-gcc fuzz-seed fuzz-loaders leak-check bench clean native wheel typecheck

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

venv: $(VPY)

install: $(VPY)
	$(VPY) -m pip install -q -e ".[demo]"

install-test: $(VPY)
	$(VPY) -m pip install -q -e ".[test]"

install-docs: $(VPY)
	$(VPY) -m pip install -q -e ".[test,docs]"

demo: install
	$(VPY) -m monge demo

# the library is compiled once under the sanitizers and linked into every C test and the gcc fuzzer
HEADERS  := $(wildcard csrc/*.h csrc/*.inc csrc/sinkhorn/*.h csrc/sinkhorn/*.inc)
CORE_SAN := $(patsubst csrc/%.c,build/san/%.o,$(CORE_SRC))
build/san/%.o: csrc/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_SAN) -c $< -o $@

build/ctest/%: csrc/tests/%.c $(CORE_SAN) $(HEADERS) $(wildcard csrc/tests/*.h)
	@mkdir -p build/ctest
	$(CC) $(CFLAGS_SAN) $< $(CORE_SAN) -lm -o $@

# fuzzing every C entry point (csrc/tests/fuzz/fuzz_entry.c, libFuzzer interface).  `make fuzz`
# uses clang's libFuzzer (coverage-guided) for FUZZ_TIME seconds; `make fuzz-gcc` runs the same
# target under gcc's ASan + UBSan with a random/mutation driver (no clang needed), and `make test`
# runs it for a bounded time.
FUZZ_TIME ?= 300
FUZZ_SEED ?= 1
# an input running longer than this many seconds fails the run (a hang is a bug too)
FUZZ_UNIT_TIMEOUT ?= 60
build/fuzz_gcc: csrc/tests/fuzz/fuzz_entry.c csrc/tests/fuzz/driver.c $(CORE_SAN) $(HEADERS)
	@mkdir -p build
	$(CC) $(CFLAGS_SAN) csrc/tests/fuzz/fuzz_entry.c csrc/tests/fuzz/driver.c $(CORE_SAN) -lm -o $@

fuzz-gcc: build/fuzz_gcc
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 FUZZ_UNIT_TIMEOUT=$(FUZZ_UNIT_TIMEOUT) \
	  build/fuzz_gcc $(FUZZ_TIME) $(FUZZ_SEED)

# clang's OpenMP runtime (libomp-dev) is often absent: probe it and fuzz the serial build if so
CLANG_OMP = $(shell printf '#include <omp.h>\nint main(void){return omp_get_max_threads()<0;}' | \
              clang -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
build/fuzz_clang: csrc/tests/fuzz/fuzz_entry.c $(CORE_SRC) $(wildcard csrc/*.h csrc/*.inc csrc/sinkhorn/*.h)
	@command -v clang >/dev/null || { echo "make fuzz needs clang (libFuzzer): apt-get install clang; make fuzz-gcc runs without it"; exit 1; }
	@mkdir -p build
	clang -std=c11 -O1 -g $(CLANG_OMP) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -Icsrc $(CORE_SRC) csrc/tests/fuzz/fuzz_entry.c -lm -o $@

# coverage-guided: the corpus in build/fuzz-corpus grows across runs; crashes land in build/fuzz-crashes
# The seed corpus (csrc/tests/fuzz/seed_corpus.tar.gz, libFuzzer -merge=1 of about 9 M executions)
# lets a short CI run start from that coverage instead of from nothing; `make fuzz-seed` refreshes it.
fuzz: build/fuzz_clang
	@mkdir -p build/fuzz-corpus build/fuzz-crashes
	@[ -n "$$(ls -A build/fuzz-corpus)" ] || tar -C build/fuzz-corpus -xzf csrc/tests/fuzz/seed_corpus.tar.gz
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/fuzz_clang \
	  -max_total_time=$(FUZZ_TIME) -timeout=$(FUZZ_UNIT_TIMEOUT) -max_len=4096 -print_final_stats=1 \
	  -artifact_prefix=build/fuzz-crashes/ build/fuzz-corpus

fuzz-seed: build/fuzz_clang
	rm -rf build/fuzz-merged && mkdir -p build/fuzz-merged
	build/fuzz_clang -merge=1 build/fuzz-merged build/fuzz-corpus
	tar -C build/fuzz-merged -czf csrc/tests/fuzz/seed_corpus.tar.gz .

# the data loaders (ChEBI-20, manifests, wav, npz) under the mutation fuzzer of tests/fuzz_loaders.py
# for LOADER_FUZZ_TIME seconds: coverage-guided through atheris when it is importable (pip install
# atheris; not a dependency), else the built-in seeded mutator.  Failing inputs: build/fuzz-loaders-crashes
LOADER_FUZZ_TIME ?= 60
fuzz-loaders: install-test
	$(VPY) tests/fuzz_loaders.py --seconds $(LOADER_FUZZ_TIME) --crash-dir build/fuzz-loaders-crashes

ctest: $(CTESTS)
	@for t in $(CTESTS); do echo "== $$t (ASan+UBSan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $$t || exit 1; done

# pytest-xdist: the suite is mostly serial Python, so it runs on as many workers as cores
PYTEST_WORKERS ?= 2
pytest: install-test
	$(VPY) -m pytest -q -n $(PYTEST_WORKERS) tests

# each stage prints its wall time ("[make test] <stage>: N s"); the total is kept under 15 min
STAGE = t0=$$(date +%s); $(2); rc=$$?; echo "[make test] $(1): $$(( $$(date +%s) - t0 )) s"; exit $$rc
test: $(VPY)
	@$(call STAGE,install (pip install -e .[test,docs]),$(MAKE) --no-print-directory install-docs)
	@$(call STAGE,C unit tests (build + run under ASan+UBSan),$(MAKE) --no-print-directory -j2 $(CTESTS) build/fuzz_gcc && $(MAKE) --no-print-directory ctest)
	@$(call STAGE,fuzz-gcc (30 s),$(MAKE) --no-print-directory fuzz-gcc FUZZ_TIME=30)
	@if command -v clang >/dev/null; then $(call STAGE,libFuzzer (60 s),$(MAKE) --no-print-directory fuzz FUZZ_TIME=60); \
	  else echo "WARNING: clang not installed: the coverage-guided libFuzzer pass (make fuzz) did not run"; fi
	@$(call STAGE,mypy + stub,$(TYPECHECK))
	@$(call STAGE,pytest ($(PYTEST_WORKERS) workers),$(VPY) -m pytest -q -n $(PYTEST_WORKERS) tests)
	@$(call STAGE,leak check,$(VPY) tests/leak_check.py --seconds 1.5)
	@$(call STAGE,sdist + wheel (fresh venvs),$(VPY) tests/dist_check.py)
	@$(call STAGE,docs (Sphinx -W + links + headless Chromium),$(MAKE) --no-print-directory docs-html)
	@if command -v valgrind >/dev/null; then $(call STAGE,valgrind,$(VPY) tests/valgrind_check.py); \
	  else echo "WARNING: valgrind not installed: the memcheck pass (make valgrind) did not run"; fi

# RSS flat over 10^5 calls of every public function and every raising catalogue call (`make test`
# runs the same check with a time budget per call site: tests/leak_check.py --help)
leak-check: install-test
	$(VPY) tests/leak_check.py --seconds 0

# the extension under valgrind memcheck: fails on any error or definite leak in monge's code
valgrind: install-test
	$(VPY) tests/valgrind_check.py

# mypy on the package (with the C extension's stub, checked to match the bindings)
TYPECHECK = $(VPY) tools/gen_core_stub.py --check && cd python && ../$(VPY) -m mypy --config-file ../pyproject.toml monge
typecheck: install-test
	$(TYPECHECK)

# sdist and manylinux wheel in wheelhouse/, each installed into a fresh venv and smoke-tested (the
# wheel with no compiler on PATH): tests/dist_check.py
wheel: install-test
	$(VPY) tests/dist_check.py --out wheelhouse

# the documentation site in build/docs/html (offline; warnings are errors), then its internal links
# and, when Debian's chromium and chromium-driver are installed, three pages checked in headless
# Chromium (formulas typeset, images loaded; screenshots in build/docs/screenshots/).  Notebooks
# run at build time unless tests/test_notebooks.py left fresh executed copies in build/.
docs: install-docs
	$(MAKE) --no-print-directory docs-html

# the same without the install step (`make test` installs the docs extra in its first stage)
docs-html:
	rm -rf build/docs/html docs/generated
	$(VPY) -m sphinx -b html -W --keep-going -q docs build/docs/html
	$(MAKE) --no-print-directory docs-check

docs-check:
	@if command -v chromium >/dev/null; then $(VPY) tools/check_docs.py; \
	  else $(VPY) tools/check_docs.py --no-browser && \
	  echo "WARNING: chromium not installed (apt-get install chromium chromium-driver): the pages were not checked in a browser"; fi

bench: install-test
	$(VPY) benchmarks/sinkhorn.py

# opt-in: build the extension for this CPU only (-march=native, no runtime dispatch)
native: $(VPY)
	MONGE_NATIVE=1 $(VPY) -m pip install -q --no-build-isolation -e . --force-reinstall --no-deps

clean:
	rm -rf build *.egg-info python/*.egg-info python/monge/*.so docs/generated docs/notebooks docs/jupyter_execute docs/benchmarks
