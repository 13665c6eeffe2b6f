#!/usr/bin/env python3
"""Latency of the management tools through the MCP endpoint (the same path the Concierge's tools
take: authenticated HTTP in, a role-filtered toolkit, a loopback REST call with a confined token,
the store). Sequential calls against a running server; prints p50/p99/mean per call.

    steward serve --listen 127.0.0.1:8477 &
    steward admin create-account --email bench@example.com --json   # → api_key, sandbox_id
    python3 scripts/bench-management.py http://127.0.0.1:8477/v1/sandboxes/<sbx>/mcp <api key> 300
"""
import json, sys, time, urllib.request
url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def call(method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, data=body, headers={"Authorization": "Bearer " + key, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())
for name, args in [("list_agents", {}), ("list_triggers", {}), ("tools/list", None)]:
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        r = call("tools/list", {}) if name == "tools/list" else call("tools/call", {"name": name, "arguments": args})
        lat.append((time.perf_counter() - t) * 1000)
        assert "result" in r, r
    lat.sort()
    print(f"{name}: n={n} p50={lat[n//2]:.2f} ms p99={lat[int(n*0.99)-1]:.2f} ms mean={sum(lat)/n:.2f} ms")
