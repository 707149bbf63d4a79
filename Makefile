# Thin wrapper over CMake presets so `make`, `make run` and `make test` do what people
# expect. The real build lives in CMakeLists.txt / CMakePresets.json.
#
#   make              install missing dependencies, build build/kvserve (release)
#   make run          ... and start the server on MODEL (a generated demo model by default)
#   make test         ... and run every test (C unit, kernel, fuzz replay, node, peer)
#   make test-asan    unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-tsan    engine, thread pool and KV tests under ThreadSanitizer (clang)
#   make fuzz         run the libFuzzer targets for FUZZ_SECONDS each (clang)
#   make clean        remove build directories

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MODEL ?=
DEMO_MODEL := models/demo.gguf
FUZZ_SECONDS ?= 60

.PHONY: all deps build run test test-asan test-tsan test-ref fuzz clean demo-model

all: build

deps:
	@./scripts/install-deps

build: deps
	@cmake --preset release >/dev/null
	@cmake --build build -j $(JOBS)

demo-model: build
	@if [ ! -f $(DEMO_MODEL) ]; then \
	  mkdir -p models && ./build/kvserve mkmodel --preset tiny -o $(DEMO_MODEL); fi

# make run [MODEL=file.gguf] [ARGS="--port 8080 --kv-ram 8G ..."]
ifeq ($(MODEL),)
run: demo-model
	./build/kvserve serve -m $(DEMO_MODEL) $(ARGS)
else
run: build
	./build/kvserve serve -m $(MODEL) $(ARGS)
endif

test: build
	@ctest --test-dir build --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@ctest --test-dir build-asan --output-on-failure -j $(JOBS) -L unit

# The scheduler's threads: engine thread + HTTP clients, thread pool, KV disk writer. Only
# these tests' targets are built (kvserve too: the KV tests run it).
TSAN_TESTS := test_engine test_threadpool test_kv_cache test_kv_disk

test-tsan: deps
	@cmake --preset tsan >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target kvserve $(TSAN_TESTS)
	@ctest --test-dir build-tsan --output-on-failure -j $(JOBS) -R "test_engine|test_threadpool|test_kv"

test-ref: deps
	@cmake --preset ref >/dev/null
	@cmake --build build-ref -j $(JOBS)
	@ctest --test-dir build-ref --output-on-failure -j $(JOBS) -L unit

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@mkdir -p build-fuzz/corpus/gguf && cp -n tests/fuzz/corpus/gguf/* build-fuzz/corpus/gguf/
	./build-fuzz/tests/fuzz/fuzz_gguf build-fuzz/corpus/gguf -max_total_time=$(FUZZ_SECONDS) -max_len=65536

clean:
	rm -rf build build-debug build-asan build-tsan build-ref build-fuzz
