#!/usr/bin/env bash
# Builds tests/fuzz/fuzz_codecs.c with clang's libFuzzer + ASan + UBSan against the codec sources and
# runs it. BUILD_DIR must hold proto/client.pb-c.[ch] and generated/sd_version.h (any configured streamd
# build; default ./build of the source tree). Three forms (see tests/fuzz/README.md):
#   run.sh BUILD_DIR [SECONDS]               all targets in one run for SECONDS (default 20), the first
#                                            byte of each input picking the decoder (CTest's fuzz.codecs)
#   FUZZ_TARGET=T run.sh BUILD_DIR SECONDS   one target T for SECONDS
#   run.sh [BUILD_DIR] --minutes N [--targets T1,T2] [--no-merge]
#                                            every target (or those listed) in turn, N minutes split
#                                            evenly among them; after
#                                            each target's run its corpus is minimized (-merge=1) back into
#                                            tests/fuzz/corpus/T, named seeds kept (skipped with --no-merge),
#                                            and a summary line per target says seconds, executions and
#                                            corpus size.
# Targets: json_cmds pb_cmds json_emulation pb_emulation ws_frames; each has its corpus in
# tests/fuzz/corpus/T (the first two forms fuzz a copy in BUILD_DIR/fuzz, the repo stays as it is).
# Inputs go up to 64 KiB (-max_len), the size of the real body and command limits. A finding (crash,
# leak, sanitizer report, timeout, out-of-memory) is kept in BUILD_DIR/fuzz/findings/ and makes the
# script exit non-zero (in --minutes form after the remaining targets have run). Run it niced on a
# shared machine: nice -n 15 tests/fuzz/run.sh --minutes 60. Runs in parallel need one BUILD_DIR each
# (the harness is built into BUILD_DIR/fuzz) and disjoint --targets.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/../.." && pwd)"
targets=(json_cmds pb_cmds json_emulation pb_emulation ws_frames)

build="$src/build"
if [[ $# -gt 0 && "$1" != --* ]]; then build="$1"; shift; fi
build="$(cd "$build" && pwd)"
minutes="" seconds=20 merge=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --no-merge) merge=0; shift ;;
    --targets)
      IFS=, read -r -a picked <<<"$2"; shift 2
      for t in "${picked[@]}"; do
        [[ " ${targets[*]} " == *" $t "* ]] || { echo "run.sh: unknown target '$t' (targets: ${targets[*]})" >&2; exit 2; }
      done
      targets=("${picked[@]}") ;;
    [0-9]*) seconds="$1"; shift ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

out="$build/fuzz"
mkdir -p "$out/findings" "$out/logs"
clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$src/server" -I"$src/shared" -I"$build/proto" -I"$build/generated" \
  "$here/fuzz_codecs.c" "$src"/server/codec.c "$src"/server/codec_json.c "$src"/server/codec_json_map.c \
  "$src"/server/codec_json_emit.c "$src"/server/codec_sse.c "$src"/server/codec_ws.c "$src"/server/codec_uni.c "$src"/server/utf8.c \
  "$src"/server/ws_input.c "$src"/server/codec_pb.c "$src"/server/pb_guard.c "$src"/server/json_span.c \
  "$src"/shared/sd_utf8.c "$src"/server/json_raw.c "$src"/server/frame.c "$build/proto/client.pb-c.c" \
  $(pkg-config --cflags --libs libprotobuf-c jansson) -o "$out/fuzz_codecs"
cd "$out"
flags=(-max_len=65536 -timeout=5 -rss_limit_mb=2560 -print_final_stats=1)

# One run: fuzz_codecs over corpus directory $2 for $1 seconds, artifacts prefixed by $3; the
# log goes to $4 (and stdout). Returns libFuzzer's exit status.
fuzz_once() {
  set +e
  ./fuzz_codecs -max_total_time="$1" "${flags[@]}" -artifact_prefix="$3" "$2" 2>&1 | tee "$4"
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

if [[ -z "$minutes" ]]; then
  corpus="$out/corpus${FUZZ_TARGET:+-$FUZZ_TARGET}"
  mkdir -p "$corpus"
  for t in "${FUZZ_TARGET:-${targets[@]}}"; do cp -n "$here/corpus/$t"/* "$corpus/" 2>/dev/null || true; done
  fuzz_once "$seconds" "$corpus" "$out/findings/${FUZZ_TARGET:-all}-" "$out/logs/${FUZZ_TARGET:-all}.log"
  exit $?
fi

# Replaces tests/fuzz/corpus/$1 with the inputs of it and of $2 that add coverage (libFuzzer names
# them by their SHA-1), leaving out those over 16 KiB. The named seeds (hand-written, make_corpus.mjs,
# former crashes) always stay, under their names, whether or not they add coverage; their SHA-1
# copies are dropped.
minimize() {
  local t="$1" work="$2" merged="$out/merge-$1" f
  rm -rf "$merged" && mkdir -p "$merged"
  ./fuzz_codecs -merge=1 "${flags[@]}" "$merged" "$here/corpus/$t" "$work" >"$out/logs/$t.merge.log" 2>&1
  for f in "$here/corpus/$t"/*; do
    [[ "$(basename "$f")" =~ ^[0-9a-f]{40}$ ]] && continue
    cp "$f" "$merged/"
    rm -f "$merged/$(sha1sum <"$f" | cut -c1-40)"
  done
  # Inputs over 16 KiB are mostly mutants of the large named seeds: not kept, so the repo stays small.
  find "$merged" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -size +16k -delete
  rm -rf "$here/corpus/$t" && mv "$merged" "$here/corpus/$t"
}

each=$((minutes * 60 / ${#targets[@]}))
[[ $each -ge 1 ]] || each=1
found=0 summary=()
for t in "${targets[@]}"; do
  work="$out/work-$t"
  mkdir -p "$work"
  cp -n "$here/corpus/$t"/* "$work/" 2>/dev/null || true
  echo "== $t: ${each} s from $(date -u +%H:%M) UTC, corpus $work"
  export FUZZ_TARGET="$t"
  if fuzz_once "$each" "$work" "$out/findings/$t-" "$out/logs/$t.log"; then
    result="none"
    if [[ $merge -eq 1 ]]; then minimize "$t" "$work"; fi
  else
    result="FINDING: $(ls -t "$out/findings/$t-"* 2>/dev/null | head -1)"
    found=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/logs/$t.log" | tail -1)
  files=$(find "$here/corpus/$t" -type f | wc -l)
  bytes=$(du -sb "$here/corpus/$t" | cut -f1)
  summary+=("$t: ${each} s, ${execs:-?} executions, corpus $files inputs / $bytes bytes, findings: $result")
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$found"
