"""The peer of benchmarks/peer.sh: FastMCP's own proxy in front of the same upstream, with its rate-limiting
middleware (a token bucket per client, high enough that every call passes), over Streamable HTTP.

Run: python fastmcp_proxy.py UPSTREAM_URL PORT
"""

import sys

from fastmcp.server import create_proxy
from fastmcp.server.middleware.rate_limiting import RateLimitingMiddleware


def main() -> None:
    upstream, port = sys.argv[1], int(sys.argv[2])
    proxy = create_proxy(upstream, name="fastmcp-peer")
    proxy.add_middleware(RateLimitingMiddleware(max_requests_per_second=1_000_000, burst_capacity=1_000_000))
    proxy.run(transport="http", host="127.0.0.1", port=port, path="/mcp", log_level="warning", stateless_http=True, json_response=True)


if __name__ == "__main__":
    main()
