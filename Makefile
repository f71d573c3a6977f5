# Thin wrapper over CMake. `make` builds, `make test` builds and runs the suite,
# `make chat` starts the chat on the bundled demo model, `make bench` benches
# synthetic models of real shapes (bench/run.sh; bench/compare-llama.sh adds llama.cpp).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 600

.PHONY: all deps configure test chat bench sanitize test-sanitize fuzz bench-convert clean

all: deps configure
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@tools/install-deps.sh

configure:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The demo model has random weights (made by `moelite synth`): it shows the
# machinery, not intelligence. Point MODEL at a real GGUF file to chat with it.
MODEL ?= $(BUILD)/demo.gguf
chat: all
	@test -f $(MODEL) || $(BUILD)/moelite synth --preset demo --type q8_0 -o $(MODEL)
	$(BUILD)/moelite chat -m $(MODEL)

bench: all
	bench/run.sh $(BUILD)

# ASan + UBSan build of everything, and the whole suite under it.
sanitize:
	@tools/install-deps.sh
	@test -f build-asan/CMakeCache.txt || cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOELITE_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)

test-sanitize: sanitize
	cd build-asan && ctest --output-on-failure -j $(JOBS)

# libFuzzer on the file readers, seeded from fuzz/corpus; crashes land in fuzz/crashes.
fuzz:
	@tools/install-deps.sh --fuzz
	@test -f build-fuzz/CMakeCache.txt || CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOELITE_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS)
	tools/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)

# Converts a generated checkpoint of several GB (PRESET=qwen2-1.5b|deepseek-fp8, TYPE=q4_k_m):
# throughput and peak RSS. The generated files are deleted afterwards.
bench-convert: all
	bench/bench-convert.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
