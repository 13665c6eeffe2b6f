#!/usr/bin/env python3
"""A misbehaving MCP server for Steward's MCP pool tests: raw JSON-RPC 2.0 over stdio, stdlib only.

Usage: fake_server.py [--silent] [--mute-list] [--bad-schemas]
  --silent       never answer `initialize` (reads and ignores everything)
  --mute-list    never answer `tools/list` (tool calls still work)
  --bad-schemas  also list tools whose input schemas a model provider would refuse

Every start appends this process's pid to the file named by $FAKE_MCP_PID_LOG, if set, so a
test can count how many processes the pool started.

Tools (calls run in threads, so several can be in flight at once):
  echo {message}   -> "echo: <message>"
  env {}           -> this process's environment as a JSON object
  fail {}          -> a result with isError: true
  crash {}         -> writes a line to stderr and exits with status 3 mid-call, never answering
  huge {mib}       -> a text result of `mib` MiB of "x"
  sleep {seconds}  -> answers "slept" after `seconds`
  add_tool {name}  -> lists a new tool `name` from now on and sends tools/list_changed
  structured {}    -> structured content only: {"answer": 42}, no content blocks
"""
import json
import os
import sys
import threading
import time

OBJECT = {"type": "object", "properties": {}}
TOOLS = [
    {"name": "echo", "description": "Echoes `message`.",
     "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}},
    {"name": "env", "description": "This process's environment.", "inputSchema": OBJECT},
    {"name": "fail", "description": "Always fails.", "inputSchema": OBJECT},
    {"name": "crash", "description": "Exits in the middle of the call.", "inputSchema": OBJECT},
    {"name": "huge", "description": "A very large text result.",
     "inputSchema": {"type": "object", "properties": {"mib": {"type": "integer"}}}},
    {"name": "sleep", "description": "Answers after a while.",
     "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}}},
    {"name": "add_tool", "description": "Adds a tool to the list.",
     "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}}},
    {"name": "structured", "description": "Structured content only.", "inputSchema": OBJECT},
]
# A string as schema makes the whole page unreadable for a strictly typed client.
BAD_TOOLS = [
    {"name": "string_schema", "description": "", "inputSchema": "not a schema"},
    {"name": "array_schema", "description": "", "inputSchema": {"type": "array", "items": {"type": "string"}}},
    {"name": "untyped_schema", "description": "", "inputSchema": {"properties": {}}},
    {"name": "bad_properties", "description": "", "inputSchema": {"type": "object", "properties": ["a", "b"]}},
]

out_lock = threading.Lock()


def send(message):
    line = json.dumps(message) + "\n"
    with out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def text_result(request_id, text, is_error=False):
    send({"jsonrpc": "2.0", "id": request_id,
          "result": {"content": [{"type": "text", "text": text}], "isError": is_error}})


def send_huge(request_id, mib):
    chunk = "x" * (1 << 20)
    with out_lock:
        sys.stdout.write('{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"' % json.dumps(request_id))
        for _ in range(mib):
            sys.stdout.write(chunk)
        sys.stdout.write('"}]}}\n')
        sys.stdout.flush()


def call(request_id, name, args, tools):
    if name == "echo":
        text_result(request_id, "echo: " + str(args.get("message", "")))
    elif name == "env":
        text_result(request_id, json.dumps(dict(os.environ)))
    elif name == "fail":
        text_result(request_id, "the fake tool failed on purpose", is_error=True)
    elif name == "crash":
        sys.stderr.write("fake server: crashing on purpose\n")
        sys.stderr.flush()
        os._exit(3)
    elif name == "huge":
        send_huge(request_id, int(args.get("mib", 1)))
    elif name == "sleep":
        time.sleep(float(args.get("seconds", 1)))
        text_result(request_id, "slept")
    elif name == "add_tool":
        tools.append({"name": args["name"], "description": "Added at run time.", "inputSchema": OBJECT})
        text_result(request_id, "added")
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    elif name == "structured":
        send({"jsonrpc": "2.0", "id": request_id, "result": {"content": [], "structuredContent": {"answer": 42}}})
    else:
        send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": "unknown tool " + name}})


def main():
    silent = "--silent" in sys.argv
    tools = list(TOOLS) + (BAD_TOOLS if "--bad-schemas" in sys.argv else [])
    log = os.environ.get("FAKE_MCP_PID_LOG")
    if log:
        with open(log, "a") as f:
            f.write("%d\n" % os.getpid())
    sys.stderr.write("fake server %d started\n" % os.getpid())
    sys.stderr.flush()
    for line in sys.stdin:
        if silent or not line.strip():
            continue
        message = json.loads(line)
        request_id = message.get("id")
        method = message.get("method")
        if request_id is None or method is None:
            continue  # notifications and responses
        params = message.get("params") or {}
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": request_id, "result": {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {"listChanged": True}},
                "serverInfo": {"name": "steward-fake-mcp", "version": "1.0.0"}}})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": request_id, "result": {}})
        elif method == "tools/list":
            if "--mute-list" in sys.argv:
                continue
            send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": list(tools)}})
        elif method == "tools/call":
            args = params.get("arguments") or {}
            threading.Thread(target=call, args=(request_id, params.get("name"), args, tools), daemon=True).start()
        else:
            send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "method not found: " + method}})


if __name__ == "__main__":
    main()
