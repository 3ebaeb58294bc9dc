"""A one-connection `websockets` server for tests/interop_python.rs.

usage: server.py {echo|server-close} {deflate|plain} TIMEOUT

Listens on 127.0.0.1:0 and prints `port N` first. echo: echoes every
message until the client closes. server-close: after the first message,
closes with 4003 "server bye". Then reports and exits.
"""

import socket
import sys
import threading
import traceback

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

import peer

lines = []
done = threading.Event()


def handler(mode, timeout):
    def handle(ws):
        try:
            lines.append(("request_extensions", ws.request.headers.get("Sec-WebSocket-Extensions", "none")))
            lines.append(("extensions", peer.extension_names(ws)))
            received = 0
            payload = 0
            try:
                for m in ws:
                    received += 1
                    payload += len(m)
                    if mode == "server-close":
                        ws.close(4003, "server bye")
                        break
                    ws.send(m)
            except ConnectionClosed:
                pass
            # The close handshake ends within close_timeout either way.
            ws.wait_closed(timeout)
            lines.append(("received", received))
            lines.append(("payload_bytes", payload))
            lines.append(("close_rcvd", peer.close_of(ws.protocol.close_rcvd)))
            lines.append(("close_sent", peer.close_of(ws.protocol.close_sent)))
            lines.append(("wire_in", ws.socket.bytes_in))
            lines.append(("wire_out", ws.socket.bytes_out))
            lines.append(("done", "ok"))
        except BaseException as e:
            traceback.print_exc()
            lines.append(("error", f"{type(e).__name__}: {e}"))
        finally:
            done.set()

    return handle


def main():
    mode, compression, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    listener = peer.CountingListener(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    server = serve(
        handler(mode, timeout),
        sock=listener,
        compression="deflate" if compression == "deflate" else None,
        max_size=None,
        open_timeout=timeout,
        close_timeout=timeout,
        ping_interval=None,
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    peer.report("port", listener.getsockname()[1])
    if not done.wait(timeout * 6):
        peer.fail("no connection came and went in time")
    server.shutdown()
    for key, value in lines:
        peer.report(key, value)
    sys.exit(1 if any(k == "error" for k, _ in lines) else 0)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:
        traceback.print_exc()
        peer.fail(f"{type(e).__name__}: {e}")
