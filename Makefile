# Thin wrapper over CMake presets so `make`, `make run` and `make test` do what people
# expect. The real build lives in CMakeLists.txt / CMakePresets.json.
#
#   make              install missing dependencies, build build/kvserve (release)
#   make run          ... and start the server on MODEL (a generated demo model by default)
#   make test         ... and run every test (C unit, kernel, fuzz replay, node, peer)
#   make test-asan    unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-tsan    engine, thread pool and KV tests under ThreadSanitizer (clang)
#   make test-arm     NEON kernels cross-compiled for aarch64, run under qemu-user
#   make fuzz         run the libFuzzer targets for FUZZ_SECONDS each (clang)
#   make bench-cache  TTFT with and without the KV cache on a replayed agent session
#                     (BENCH_CACHE_ARGS, e.g. "--prefix-tokens 2000 --turn-tokens 50-130")
#   make bench-load   1, 2, 4 concurrent streaming clients: decode tok/s, TTFT, errors, and a
#                     cached follow-up's TTFT during a long prefill (BENCH_LOAD_ARGS)
#   make clean        remove build directories

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MODEL ?=
DEMO_MODEL := models/demo.gguf
FUZZ_SECONDS ?= 60

.PHONY: all deps build run test test-asan test-tsan test-arm test-ref fuzz fuzz-build clean demo-model bench-cache

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

# The aarch64 kernel tables against ref: tests/kernels/cross_arm, a project of its own
# built with the cross toolchain and run under qemu on a CPU with DotProd and on one
# without; -V shows each run's cases and the CPU it saw.
test-arm: deps
	@cmake -S tests/kernels/cross_arm -B build-arm \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/aarch64-linux-gnu.cmake >/dev/null
	@cmake --build build-arm -j $(JOBS)
	@ctest --test-dir build-arm --output-on-failure -V

test-ref: deps
	@cmake --preset ref >/dev/null
	@cmake --build build-ref -j $(JOBS)
	@ctest --test-dir build-ref --output-on-failure -j $(JOBS) -L unit

# Every libFuzzer target in turn (`make fuzz-NAME` runs one): new inputs go to
# build-fuzz/corpus/NAME, the seeds in tests/fuzz/corpus/NAME are only read, a crash is
# written to build-fuzz/, and tests/fuzz/NAME.dict is used when there is one.
FUZZ_TARGETS := gguf tokenizer toolcall kv_block request
FUZZ_FLAGS_gguf := -max_len=65536

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-build: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

fuzz-%: fuzz-build
	@mkdir -p build-fuzz/corpus/$*
	./build-fuzz/tests/fuzz/fuzz_$* build-fuzz/corpus/$* tests/fuzz/corpus/$* -max_total_time=$(FUZZ_SECONDS) \
	  -artifact_prefix=build-fuzz/ $(if $(wildcard tests/fuzz/$*.dict),-dict=tests/fuzz/$*.dict) $(FUZZ_FLAGS_$*)

BENCH_CACHE_ARGS ?=
bench-cache: build
	node bench/cache.mjs $(BENCH_CACHE_ARGS)

# make bench-load [BENCH_LOAD_ARGS="--long-prefill 8000 --model FILE"] (bench/load.mjs)
BENCH_LOAD_ARGS ?=
.PHONY: bench-load
bench-load: build
	node bench/load.mjs $(BENCH_LOAD_ARGS)

clean:
	rm -rf build build-debug build-asan build-tsan build-ref build-fuzz build-arm

# make bench-peer [ARGS="--models qwen3-0.6b-q8_0 -d 0,4096"]: kvserve bench against
# llama.cpp on the same generated models, one table (bench/peer.mjs describes it)
.PHONY: bench-peer
bench-peer: build
	node bench/peer.mjs $(ARGS)
