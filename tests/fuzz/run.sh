#!/usr/bin/env bash
# Builds tests/fuzz/fuzz_codecs.c with clang's libFuzzer + ASan + UBSan against the codec sources and
# runs it for SECONDS (default 20) from the seed corpus in tests/fuzz/corpus (a copy: new inputs stay in
# the build dir). Usage: run.sh BUILD_DIR [SECONDS]. BUILD_DIR must hold proto/client.pb-c.[ch] and
# generated/sd_version.h (any configured streamd build). Exit 0 when no crash was found.
# FUZZ_TARGET=json_cmds|pb_cmds|json_emulation|pb_emulation|ws_frames fuzzes one decoder only, from the seeds whose
# names start with that target (corpus dir BUILD_DIR/fuzz/corpus-TARGET); see tests/fuzz/README.md.
# Inputs go up to 64 KiB (-max_len), the size of the real body and command limits.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/../.." && pwd)"
build="$(cd "$1" && pwd)"
seconds="${2:-20}"
out="$build/fuzz"
target="${FUZZ_TARGET:-}"
corpus="corpus${target:+-$target}"
mkdir -p "$out/$corpus"
cp -n "$here"/corpus/${target}* "$out/$corpus/" 2>/dev/null || true
clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$src/server" -I"$src/shared" -I"$build/proto" -I"$build/generated" \
  "$here/fuzz_codecs.c" "$src"/server/codec.c "$src"/server/codec_json.c "$src"/server/codec_json_map.c \
  "$src"/server/codec_json_emit.c "$src"/server/codec_sse.c "$src"/server/codec_ws.c "$src"/server/utf8.c "$src"/server/ws_input.c "$src"/server/codec_pb.c "$src"/server/pb_guard.c "$src"/server/json_span.c "$src"/shared/sd_utf8.c "$src"/server/json_raw.c \
  "$src"/server/frame.c "$build/proto/client.pb-c.c" \
  $(pkg-config --cflags --libs libprotobuf-c jansson) -o "$out/fuzz_codecs"
cd "$out"
./fuzz_codecs -max_total_time="$seconds" -max_len=65536 -timeout=5 -print_final_stats=1 "$corpus"
