"""Drives `operator mcp` with the official Python MCP SDK (`mcp` from PyPI), for the e2e tests.

    python mcp_client.py MODE ELICIT STEPS_JSON -- COMMAND [ARGS...]

MODE is `legacy` (initialize handshake; the server asks by elicitation requests) or `auto` (the
SDK negotiates protocol 2026-07-28; the server answers input-required and the SDK retries).
ELICIT is how the person answers a confirmation: `accept`, `decline`, or `none` (the client has
no elicitation support). STEPS_JSON is a list of `{"tool": NAME, "args": {...}}`,
`{"list": true}` for the tool list, or `{"parallel": [steps]}` for calls sent together. Prints one JSON object per step. The server gets the SDK's
default environment plus every `MCP_SERVER_ENV_<NAME>` variable of this one, as `<NAME>`.
"""

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters, types
from mcp.client.stdio import get_default_environment


def dump(value):
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


async def main() -> None:
    mode, elicit, steps_json = sys.argv[1], sys.argv[2], sys.argv[3]
    command = sys.argv[sys.argv.index("--") + 1 :]
    asked = []

    async def on_elicit(context, params):
        asked.append(params.message)
        if elicit == "accept":
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action="decline")

    env = get_default_environment()
    prefix = "MCP_SERVER_ENV_"
    env.update({k[len(prefix) :]: v for k, v in os.environ.items() if k.startswith(prefix)})
    server = StdioServerParameters(command=command[0], args=command[1:], env=env)
    kwargs = {"mode": mode, "client_info": types.Implementation(name="e2e-assistant", version="1.0")}
    if elicit != "none":
        kwargs["elicitation_callback"] = on_elicit
    async with Client(server, **kwargs) as client:
        async def call(step):
            before = len(asked)
            result = await client.call_tool(step["tool"], step.get("args", {}))
            text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
            return {
                "tool": step["tool"],
                "is_error": bool(result.is_error),
                "structured": result.structured_content,
                "text": text,
                "asked": asked[before:],
            }

        for step in json.loads(steps_json):
            if step.get("list"):
                tools = await client.list_tools()
                print(json.dumps({"tools": [dump(t) for t in tools.tools]}), flush=True)
            elif "parallel" in step:
                # Sent together; the results in the order they came back.
                done = []

                async def track(s):
                    done.append(await call(s))

                await asyncio.gather(*(track(s) for s in step["parallel"]))
                print(json.dumps({"parallel": done}), flush=True)
            else:
                print(json.dumps(await call(step)), flush=True)


asyncio.run(main())
