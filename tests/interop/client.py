"""A `websockets` client for tests/interop_python.rs.

usage: client.py PORT {echo|server-close} {deflate|plain} TIMEOUT

echo: sends every message of peer.all_messages() and checks each echo,
then closes with 4001 "bye from python".
server-close: sends "close me" and waits for the server's close frame.
"""

import socket
import sys
import traceback

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import peer


def main():
    port, mode, compression, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    sock = peer.CountingSocket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", int(port)))
    sock.settimeout(None)
    with connect(
        f"ws://127.0.0.1:{port}/",
        sock=sock,
        compression="deflate" if compression == "deflate" else None,
        max_size=None,
        open_timeout=timeout,
        close_timeout=timeout,
        ping_interval=None,
        proxy=None,
    ) as ws:
        peer.report("response_extensions", ws.response.headers.get("Sec-WebSocket-Extensions", "none"))
        peer.report("extensions", peer.extension_names(ws))
        if mode == "echo":
            sent = 0
            for i, m in enumerate(peer.all_messages()):
                ws.send(m)
                sent += len(m)
                echo = ws.recv(timeout=timeout)
                if type(echo) is not type(m) or echo != m:
                    peer.fail(f"echo #{i}: sent {peer.describe(m)}, got {peer.describe(echo)} that differs")
            peer.report("echoed", i + 1)
            peer.report("payload_bytes", sent)
            ws.close(4001, "bye from python")
        elif mode == "server-close":
            ws.send("close me")
            try:
                m = ws.recv(timeout=timeout)
                peer.fail(f"a message instead of a close: {peer.describe(m)}")
            except ConnectionClosed:
                pass
        else:
            peer.fail(f"unknown mode {mode}")
    peer.report("close_rcvd", peer.close_of(ws.protocol.close_rcvd))
    peer.report("close_sent", peer.close_of(ws.protocol.close_sent))
    peer.report("wire_in", sock.bytes_in)
    peer.report("wire_out", sock.bytes_out)
    peer.report("done", "ok")


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:
        traceback.print_exc()
        peer.fail(f"{type(e).__name__}: {e}")
