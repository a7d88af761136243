#!/usr/bin/env python3
"""Time to first byte, to the first SSE chunk and to the end of a stream, over one keep-alive connection.

    stream_timing.py URL BODY_FILE KEY N [SKIP]   ->  one JSON line: n, mean/p50/p90 of ttfb, ttfc and total (ms)

ttfb = the first byte of the response (the status line); ttfc = the first byte of the first "data:" line of the body;
total = the end of the body. Loopback only: the URL must be http://127.x.x.x. The first SKIP requests (default 1: connection
setup, cold paths) are not counted.
"""
import json
import socket
import statistics
import sys
import time
from urllib.parse import urlsplit


def main() -> None:
    url, body_file, key, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    skip = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    u = urlsplit(url)
    if not (u.hostname or "").startswith("127."):
        sys.exit("loopback addresses only")
    body = open(body_file, "rb").read().rstrip()
    req = (
        f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ttfb, ttfc, total = [], [], []
    pending = b""
    for i in range(n + skip):
        t0 = time.perf_counter()
        sock.sendall(req)
        buf, t_fb, t_fc, head_end = pending, None, None, -1
        pending = b""
        status = None
        while True:
            if head_end < 0:
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0:
                    head = buf[:head_end].decode("latin-1").lower()
                    status = int(head.split(" ", 2)[1])
                    chunked = "transfer-encoding: chunked" in head
                    length = None
                    for line in head.split("\r\n"):
                        if line.startswith("content-length:"):
                            length = int(line.split(":", 1)[1])
            if head_end >= 0:
                content = buf[head_end + 4:]
                if t_fc is None and b"data:" in content:
                    t_fc = time.perf_counter()
                if chunked:
                    end = content.find(b"\r\n0\r\n\r\n")
                    if end >= 0 or content.startswith(b"0\r\n\r\n"):
                        stop = (end + 7) if end >= 0 else 5
                        pending = content[stop:]
                        break
                elif length is not None and len(content) >= length:
                    pending = content[length:]
                    break
            data = sock.recv(65536)
            if not data:
                sys.exit("connection closed")
            if t_fb is None:
                t_fb = time.perf_counter()
            buf += data
        t_end = time.perf_counter()
        if status != 200:
            sys.exit(f"HTTP {status}: {buf[:300]!r}")
        if t_fc is None:
            sys.exit("no data: line in the response")
        if i < skip:
            continue
        ttfb.append((t_fb - t0) * 1000)
        ttfc.append((t_fc - t0) * 1000)
        total.append((t_end - t0) * 1000)
    sock.close()

    def stats(xs):
        q = statistics.quantiles(xs, n=10)
        return {"mean": round(statistics.fmean(xs), 4), "p50": round(statistics.median(xs), 4), "p90": round(q[8], 4)}

    print(json.dumps({"n": n, "ttfb": stats(ttfb), "ttfc": stats(ttfc), "total": stats(total)}, separators=(",", ":")))


if __name__ == "__main__":
    main()
