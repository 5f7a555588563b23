# The README's two commands are `make demo` and `make test`. Both install what is missing
# (scripts/setup.sh), build, and run.

SHELL := /bin/bash
STYLIZE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/stylize-video
export STYLIZE_CACHE
VENV := $(STYLIZE_CACHE)/torch-2.11.0
# tch finds libtorch inside the virtualenv's torch package.
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(VENV)/bin:$(PATH)
CARGO ?= cargo
BIN := target/release/stylize-video

# The demo: Big Buck Bunny in the style of Van Gogh, with its sound, and one frame of it as an
# image with the GIF of its optimisation. Small and short on a CPU, the whole clip larger on a GPU.
HAVE_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
DEMO_SIZE ?= $(if $(HAVE_GPU),720,256)
DEMO_ITERATIONS ?= $(if $(HAVE_GPU),500,200)
DEMO_VIDEO_SIZE ?= $(if $(HAVE_GPU),720,128)
DEMO_VIDEO_FRAMES ?= $(if $(HAVE_GPU),:,:25)
DEMO_VIDEO_FIRST ?= $(if $(HAVE_GPU),500,300)
DEMO_VIDEO_WARM ?= $(if $(HAVE_GPU),100,60)
DEMO_OUT := demo-output

.PHONY: setup build demo test lint bench gpu-bundle clean

setup:
	@scripts/setup.sh >/dev/null

build: setup
	$(CARGO) build --release

demo: build
	@mkdir -p $(DEMO_OUT)
	$(BIN) samples/video/bigbuckbunny.mp4 \
	  --style samples/styles/van-gogh-village-street-auvers.jpg \
	  --size $(DEMO_VIDEO_SIZE) --frames $(DEMO_VIDEO_FRAMES) \
	  --first-frame-iterations $(DEMO_VIDEO_FIRST) --iterations $(DEMO_VIDEO_WARM) \
	  -o $(DEMO_OUT)/bigbuckbunny.van-gogh.mp4 \
	  --report $(DEMO_OUT)/bigbuckbunny.van-gogh.json --overwrite
	$(BIN) samples/frames/bigbuckbunny-060.jpg \
	  --style samples/styles/van-gogh-village-street-auvers.jpg \
	  --size $(DEMO_SIZE) --iterations $(DEMO_ITERATIONS) \
	  -o $(DEMO_OUT)/bigbuckbunny-060.van-gogh.png \
	  --gif $(DEMO_OUT)/bigbuckbunny-060.van-gogh.gif \
	  --report $(DEMO_OUT)/bigbuckbunny-060.van-gogh.json --overwrite
	@echo
	@echo "demo: stylised clip   $(DEMO_OUT)/bigbuckbunny.van-gogh.mp4 (with its sound)"
	@echo "demo: stylised frame  $(DEMO_OUT)/bigbuckbunny-060.van-gogh.png"
	@echo "demo: iteration GIF   $(DEMO_OUT)/bigbuckbunny-060.van-gogh.gif"
	@echo "demo: report          $(DEMO_OUT)/bigbuckbunny-060.van-gogh.json"

# One test at a time: each test's libtorch (or the binary a test runs) already uses every core,
# and two at once on 2 cores ran the video tests 6x slower (979 s against 167 s, 2026-11-24).
test: setup
	$(CARGO) test --release -- --test-threads=1

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	# The frames-only build (no ffmpeg), as taken to machines without ffmpeg's libraries.
	$(CARGO) clippy --release --no-default-features --all-targets -- -D warnings
	# The library's documentation, its links included.
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --no-deps

# CPU (and CUDA when present) evaluation timings, with PyTorch on the same machine for a ratio.
bench: build
	$(CARGO) bench --bench evaluation
	python3 benches/pytorch_evaluation.py

# A frames-only build (no ffmpeg libraries needed) of the binary and of the evaluation benchmark,
# stripped, in .gpu/ (git-ignored), to carry to the GPU machine for scripts/gpu-bench.sh.
gpu-bundle: setup
	$(CARGO) build --release --no-default-features --target-dir target/frames-only
	$(CARGO) bench --no-default-features --target-dir target/frames-only --bench evaluation --bench coarse_to_fine --bench warm_start --no-run
	$(CARGO) test --release --no-default-features --target-dir target/frames-only --test gpu --no-run
	@mkdir -p .gpu/deps
	cp $$(ls -t target/frames-only/release/deps/gpu-* | grep -v '\.d$$' | head -1) .gpu/deps/gpu
	cp target/frames-only/release/stylize-video .gpu/stylize-video
	cp $$(ls -t target/frames-only/release/deps/evaluation-* | grep -v '\.d$$' | head -1) .gpu/evaluation
	cp $$(ls -t target/frames-only/release/deps/coarse_to_fine-* | grep -v '\.d$$' | head -1) .gpu/coarse_to_fine
	cp $$(ls -t target/frames-only/release/deps/warm_start-* | grep -v '\.d$$' | head -1) .gpu/warm_start
	strip .gpu/stylize-video .gpu/evaluation .gpu/coarse_to_fine .gpu/warm_start .gpu/deps/gpu
	@ls -la .gpu .gpu/deps

clean:
	$(CARGO) clean
	rm -rf $(DEMO_OUT)
