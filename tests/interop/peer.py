"""Shared pieces of the Python `websockets` peers for tests/interop_python.rs.

Both peers print a report on stdout, one `key value` line each, which the
Rust test parses; a failure is an `error ...` line and a non-zero exit.
"""

import socket
import sys

# Payload sizes around the frame-length encodings (7-bit, 16-bit, 64-bit),
# up to 1 MiB. tests/interop_python.rs has the same table and generators.
SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]


def text_payload(seed, size):
    """`size` bytes of compressible ASCII text, different per seed."""
    out = []
    total = 0
    line = 0
    while total < size:
        s = f"{seed} line {line}: the quick brown fox jumps over the lazy dog\n"
        out.append(s)
        total += len(s)
        line += 1
    return "".join(out)[:size]


def binary_payload(seed, size):
    """`size` bytes covering every byte value (period 256: compressible)."""
    pattern = bytes((seed * 31 + j * 7) % 256 for j in range(256))
    return (pattern * (size // 256 + 1))[:size]


def all_messages():
    """Every size as text, then as binary, with distinct seeds."""
    out = []
    for i, size in enumerate(SIZES):
        out.append(text_payload(2 * i, size))
        out.append(binary_payload(2 * i + 1, size))
    return out


def describe(m):
    """A short description of a message (never its payload)."""
    kind = "text" if isinstance(m, str) else "binary"
    return f"{kind} of {len(m)} bytes"


class CountingSocket(socket.socket):
    """A socket that counts the bytes it carries, so a test can tell that
    permessage-deflate really compressed what went over the wire."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bytes_in = 0
        self.bytes_out = 0

    def recv(self, bufsize, *args):
        data = super().recv(bufsize, *args)
        self.bytes_in += len(data)
        return data

    def send(self, data, *args):
        n = super().send(data, *args)
        self.bytes_out += n
        return n

    def sendall(self, data, *args):
        super().sendall(data, *args)
        self.bytes_out += len(data)


class CountingListener(socket.socket):
    """A listening socket whose accepted connections are CountingSockets."""

    def accept(self):
        fd, addr = self._accept()
        sock = CountingSocket(self.family, self.type, self.proto, fileno=fd)
        # As socket.accept does: a blocking listener hands out blocking sockets.
        if socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr


def report(key, value):
    print(f"{key} {value}", flush=True)


def extension_names(ws):
    names = [e.name for e in ws.protocol.extensions]
    return ",".join(names) if names else "none"


def close_of(frame):
    """`code reason` of a close frame, `none` without one."""
    return "none" if frame is None else f"{frame.code} {frame.reason}".rstrip()


def fail(what):
    report("error", what)
    sys.exit(1)
