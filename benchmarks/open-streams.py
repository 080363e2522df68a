"""Holds N event streams open through toolgate at once (benchmarks/memory.sh).

Each stream is a raw HTTP/1.1 POST of tools/call that the upstream (example-upstream's /bench/sse with holdMs)
answers with one event and then holds. Once every stream has its first event, this prints "open N" and waits for
a line on stdin; then it closes them all and prints "closed".
Usage: python3 open-streams.py HOST PORT N
"""

import asyncio
import sys

BODY = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hold"}}}'
REQUEST = (
    b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


async def open_one(host: str, port: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(REQUEST)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"stream refused: {head[:200]!r}")
    seen = b""
    while b"notifications/message" not in seen:  # the first event has arrived through toolgate
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError("stream ended before its first event")
        seen = seen[-64:] + chunk
    return writer


async def main() -> None:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    writers = []
    for start in range(0, count, 100):  # in waves, so the listen backlog is never the limit
        writers += await asyncio.gather(*(open_one(host, port) for _ in range(start, min(start + 100, count))))
    print(f"open {len(writers)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for writer in writers:
        writer.close()
    print("closed", flush=True)


asyncio.run(main())
