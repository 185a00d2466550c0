#!/usr/bin/env bash
# System packages the tests (and the build scripts) need, installed when missing.
# `make test` and `.ci/run` call this. As root it installs what is missing with apt-get;
# otherwise it prints one loud line naming what to install, and the tests that need a
# missing package are skipped (tests/conftest.py reports them again at the end).
set -uo pipefail

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)             # decoding fallback + hostile-input tests
command -v chromium >/dev/null || missing+=(chromium)         # browser tests (Playwright, Debian chromium)
command -v fluidsynth >/dev/null || missing+=(fluidsynth)     # training-pack fixture build (MIDI -> audio)
[[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ]] || missing+=(timgm6mb-soundfont)

((${#missing[@]})) || exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing system packages for the tests: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    && exit 0
  echo "!!! apt-get could not install: ${missing[*]}" >&2
else
  echo "!!! MISSING SYSTEM PACKAGES: ${missing[*]} -- the tests that need them will be SKIPPED." >&2
  echo "!!! Install them with: sudo apt-get install -y ${missing[*]}" >&2
fi
exit 0
