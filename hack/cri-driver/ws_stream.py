#!/usr/bin/python3
"""ws_stream.py URL [STDIN [UNTIL]]: a client of the CRI streaming server (the URL an
Exec or Attach call returned), as kubectl speaks to it through the API
server: a WebSocket with the subprotocol v4.channel.k8s.io, where each
binary message starts with its channel (0 stdin, 1 stdout, 2 stderr, 3 the
final status as JSON). Sends STDIN (if given) on channel 0, reads until the
server closes the stream (or, with UNTIL, until stdout holds UNTIL: an attach
lasts as long as the container) and prints what came on each channel as one JSON object: {"1": ..., "2": ..., "3": ...,
"protocol": ...}. hack/e2e-cri runs it in containerd's network namespace,
where the streaming server listens (python3-websocket from Debian)."""
import json
import sys

import websocket

url = sys.argv[1].replace("http://", "ws://", 1).replace("https://", "wss://", 1)
data = sys.argv[2].encode() if len(sys.argv) > 2 and sys.argv[2] else None
until = sys.argv[3].encode() if len(sys.argv) > 3 else None
ws = websocket.create_connection(url, timeout=30, subprotocols=["v4.channel.k8s.io"])
got = {"1": b"", "2": b"", "3": b""}
if data is not None:
    ws.send_binary(b"\x00" + data)
while True:
    try:
        op, msg = ws.recv_data()
    except websocket.WebSocketConnectionClosedException:
        break
    if op == websocket.ABNF.OPCODE_CLOSE:
        break
    if msg:
        ch = str(msg[0])
        got[ch] = got.get(ch, b"") + msg[1:]
        if until is not None and until in got["1"]:
            break
res = {k: v.decode(errors="replace") for k, v in got.items()}
res["protocol"] = ws.getsubprotocol() or ""
ws.close()
print(json.dumps(res))
