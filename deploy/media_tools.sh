#!/usr/bin/env bash
# Debian packages the media evidence and its generated test set need (issue 12): ffmpeg (bounded
# decoding, the set's transformations), fpcalc (Chromaprint), fluidsynth with the GM soundfont
# (rendering music21 scores) and Wesnoth's soundtrack (real recordings). Installed only where
# missing; tests that need them skip with the list of what is missing.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v fpcalc >/dev/null || need+=(libchromaprint-tools)
command -v fluidsynth >/dev/null || need+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
[ -d /usr/share/games/wesnoth/1.16/data/core/music ] || need+=(wesnoth-music)
if [ ${#need[@]} -eq 0 ]; then
  echo "[media-tools] present"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "[media-tools] not a Debian system; install by hand: ${need[*]} (media tests will skip)" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "[media-tools] installing ${need[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
