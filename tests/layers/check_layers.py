#!/usr/bin/env python3
"""check_layers: the server's modules only include headers of their own layer or of layers below.

ARCHITECTURE.md's layers, one-way: transports and APIs call the protocol layer, which uses the broker,
the hub, the registry and sessions; a session calls nothing above itself (it reaches the protocol layer
through struct session_hooks), the hub tells the broker of channels only through hub_channel_watch.
The table below gives each module (server/NAME.c and NAME.h) its layer; a module missing from it fails
the check, so a new file has to be placed. Exits non-zero, naming the file and the line of every
include that goes up a layer.

Usage: check_layers.py SOURCE_DIR"""
import os
import re
import sys

LAYERS = [
    ("foundation", """log fdlimit ids strmap siphash utf8 timer evloop loops frame codes json_raw json_span pb_guard
        config server server_config sd_version channel codec codec_json codec_json_emit codec_json_map codec_pb
        codec_sse codec_ws codec_uni
        ws_input http_framing http_host redis_addr redis_conn redis_script redis_sentinel
        presence stats auth auth_claims jwks jwks_fetch workers trace_decode http_client proxy
        fossil pub_delta channel_map heap_trim"""),
    ("session", "session session_feed trace"),
    ("hub and registry", "hub registry"),
    ("broker", """broker history map_state broker_memory broker_redis broker_redis_internal broker_redis_control
        broker_redis_history broker_redis_map broker_redis_presence broker_redis_sub"""),
    ("protocol", "protocol protocol_internal protocol_channel protocol_map protocol_keys proxy_calls"),
    ("transports and APIs", """http handlers stream stream_direct ws emulation api api_methods api_map admin
        admin_commands admin_top admin_trace hangup ops uni proxy_headers"""),
    ("start-up", "main"),
]

# Headers that are not modules of server/ (generated protobuf-c code, the project's shared/ code).
EXTERNAL = re.compile(r"^(.*\.pb-c\.h|sd_version\.h)$")


def layer_table():
    rank = {}
    for i, (_, names) in enumerate(LAYERS):
        for name in names.split():
            rank[name] = i
    return rank


def main():
    src = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "server")
    rank = layer_table()
    problems = []
    include = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
    for fname in sorted(os.listdir(src)):
        if not fname.endswith((".c", ".h")):
            continue
        module = fname[:-2]
        if module not in rank:
            problems.append(f"server/{fname}: module '{module}' has no layer in tests/layers/check_layers.py")
            continue
        with open(os.path.join(src, fname), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                m = include.match(line)
                if not m or EXTERNAL.match(m.group(1)):
                    continue
                target = m.group(1)[:-2] if m.group(1).endswith(".h") else m.group(1)
                if target not in rank:
                    if os.path.exists(os.path.join(src, m.group(1))):
                        problems.append(f"server/{fname}:{lineno}: includes {m.group(1)}, which has no layer")
                    continue
                if rank[target] > rank[module]:
                    problems.append(f"server/{fname}:{lineno}: {module} ({LAYERS[rank[module]][0]}) includes "
                                    f"{m.group(1)} ({LAYERS[rank[target]][0]}), a layer above it")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include(s) against the layers")
        return 1
    print(f"layers: every include of server/ goes down or sideways ({len(rank)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
