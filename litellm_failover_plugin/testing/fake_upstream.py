"""A fake OpenAI-compatible upstream on 127.0.0.1, for tests, the demo and the benchmarks.

It answers `/v1/chat/completions` (plain and streamed), `/v1/embeddings`, Azure-style
`/openai/deployments/<name>/...` and Anthropic-style `/v1/messages` in well under a millisecond, records
every request it receives (key, model, stream, time), and does what it is told per API key:
answer, fail with a status, or wait. It can stop listening and listen again on the same port,
which is what a scaled-down model server looks like to a client (connection refused).

Use it in-process (`FakeUpstream(...).start()`, it runs its own loop in a thread) or as a
process: `python -m litellm_failover_plugin.testing --port 9101 --name primary`,
steered through `POST /_control` and read through `GET /_requests`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

HOST = "127.0.0.1"


@dataclass
class Behavior:
    status: int = 200
    delay_s: float = 0.0
    message: str = ""
    retry_after_s: float | None = None
    error_type: str = "server_error"
    break_stream: bool = False  # streams only: answer 200, then drop the connection before any chunk
    # streams only: what goes wrong after `fault_after` content chunks (see STREAM_FAULTS)
    fault: str = ""
    fault_after: int = 1
    text: list[str] | None = None  # the content chunks; default "Hello ", "from <name>"
    first_chunk_delay_s: float = 0.0  # after the 200 and before the first chunk
    chunk_delay_s: float = 0.0  # between content chunks
    stall_s: float = 120.0  # how long a "stall" lasts (it ends early when the client leaves)
    tool_call: bool = False  # stream a tool call instead of text
    body: str | None = None  # answer this raw body (with `status`) instead of JSON: HTML, garbage, ""
    drop: bool = False  # close the connection without answering at all
    silent: bool = False  # accept the request and send nothing, not even a status line, for stall_s
    reject_prefill: bool = False  # answer 400 to a conversation that ends with an assistant message


# cut: close the connection; reset: TCP RST; stall: stop sending; malformed: a chunk that is not
# JSON; error_event: an in-stream `{"error": ...}` event; no_finish: end cleanly without a
# finish_reason and without [DONE]; empty: a role-only chunk, finish_reason "stop", [DONE]
STREAM_FAULTS = ("cut", "reset", "stall", "malformed", "error_event", "no_finish", "empty")


@dataclass(frozen=True)
class Received:
    key: str
    model: str
    stream: bool
    at: float
    prompt: str = ""  # the last message's text: lets a test tell requests apart
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _State:
    name: str
    default: Behavior = field(default_factory=Behavior)
    by_key: dict[str, Behavior] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    streaming: int = 0  # stream responses being written right now


def _completion(name: str, model: str, key_hint: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{name}-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"Hello from {name}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        "system_fingerprint": key_hint,
    }


def _chunk(name: str, model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    body = {
        "id": f"chatcmpl-{name}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


async def _gone(request: web.Request, seconds: float) -> None:
    """Wait `seconds`, or less when the client closes the connection."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(min(0.05, max(0.0, end - time.monotonic())))


async def _stream(request: web.Request, state: _State, b: Behavior, model: str, body: dict[str, Any]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None
    if b.break_stream:
        transport.close()
        return resp
    if b.first_chunk_delay_s:
        await _gone(request, b.first_chunk_delay_s)
    name = state.name
    if b.fault == "empty":
        await resp.write(_chunk(name, model, {"role": "assistant", "content": ""}, None))
        await resp.write(_chunk(name, model, {}, "stop"))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
    if b.tool_call:
        call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
        parts = [{"role": "assistant", "tool_calls": [call]}]
        parts += [{"tool_calls": [{"index": 0, "function": {"arguments": a}}]} for a in ('{"q":', ' "x"}')]
        finish = "tool_calls"
    else:
        text = b.text if b.text is not None else ["Hello ", f"from {name}"]
        parts = [{"role": "assistant", "content": t} if i == 0 else {"content": t} for i, t in enumerate(text)]
        finish = "stop"
    for i, delta in enumerate(parts):
        if b.fault and i == b.fault_after:
            return await _fault(request, resp, b, name, model)
        if i and b.chunk_delay_s:
            await asyncio.sleep(b.chunk_delay_s)
        await resp.write(_chunk(name, model, delta, None))
    if b.fault and b.fault_after >= len(parts):
        return await _fault(request, resp, b, name, model)
    await resp.write(_chunk(name, model, {}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 5, "completion_tokens": len(parts), "total_tokens": 5 + len(parts)}
        await resp.write(f"data: {json.dumps({**json.loads(_chunk(name, model, {}, None)[6:]), 'choices': [], 'usage': usage})}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _fault(request: web.Request, resp: web.StreamResponse, b: Behavior, name: str, model: str) -> web.StreamResponse:
    transport = request.transport
    assert transport is not None
    if b.fault == "cut":
        transport.close()
    elif b.fault == "reset":
        sock = transport.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends a RST
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    elif b.fault == "stall":
        await _gone(request, b.stall_s)
        if not transport.is_closing():
            transport.close()
    elif b.fault == "malformed":
        await resp.write(b'data: {"id": "broken", "choices": [{"delta": {"content": \n\n')
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
    elif b.fault == "error_event":
        error = {"message": b.message or f"{name} overloaded mid-stream", "type": b.error_type, "code": "overloaded"}
        await resp.write(f"data: {json.dumps({'error': error})}\n\n".encode())
        await resp.write_eof()
    elif b.fault == "no_finish":
        await resp.write_eof()
    else:
        raise ValueError(f"unknown stream fault {b.fault!r}; one of {', '.join(STREAM_FAULTS)}")
    return resp


def _key_of(request: web.Request) -> str:
    """The API key, however the provider sends it: OpenAI's bearer, Azure's api-key, Anthropic's x-api-key."""
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bearer or request.headers.get("api-key", "") or request.headers.get("x-api-key", "")


def build_app(state: _State) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        key = _key_of(request)
        # Azure-style paths name the deployment in the URL, not the body
        model = str(body.get("model") or request.match_info.get("deployment", ""))
        stream = bool(body.get("stream"))
        messages = body.get("messages") or [{}]
        prompt = str(messages[-1].get("content", "")) if isinstance(messages[-1], dict) else ""
        state.received.append(Received(key, model, stream, time.time(), prompt, list(messages)))
        b = state.by_key.get(key, state.default)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if b.delay_s:
                await asyncio.sleep(b.delay_s)
        finally:
            state.in_flight -= 1
        if b.drop or b.silent:
            if b.silent:
                await _gone(request, b.stall_s)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never sent: the connection is gone
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        if b.reject_prefill and last.get("role") == "assistant":
            error = {"message": "This model does not support assistant message prefill.", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=400)
        if b.body is not None:
            kind = "application/json" if b.body.lstrip().startswith("{") else "text/html"
            return web.Response(status=b.status, body=b.body.encode(), content_type=kind)
        if b.status != 200:
            headers = {}
            if b.retry_after_s is not None:
                headers["retry-after"] = str(b.retry_after_s)
            error = {"message": b.message or f"{state.name} says {b.status}", "type": b.error_type}
            return web.json_response({"error": error}, status=b.status, headers=headers)
        if not stream:
            return web.json_response(_completion(state.name, model, key[-2:]))
        state.streaming += 1
        try:
            return await _stream(request, state, b, model, body)
        finally:
            state.streaming -= 1

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        key = _key_of(request)
        model = str(body.get("model") or request.match_info.get("deployment", ""))
        state.received.append(Received(key, model, False, time.time(), str(body.get("input", ""))))
        b = state.by_key.get(key, state.default)
        if b.status != 200:
            error = {"message": b.message or f"{state.name} says {b.status}", "type": b.error_type}
            return web.json_response({"error": error}, status=b.status)
        inputs = body.get("input")
        n = len(inputs) if isinstance(inputs, list) else 1
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(n)]
        usage = {"prompt_tokens": n, "total_tokens": n}
        return web.json_response({"object": "list", "data": data, "model": model, "usage": usage})

    async def messages(request: web.Request) -> web.Response:
        """Anthropic's /v1/messages (not streamed)."""
        body = await request.json()
        key = _key_of(request)
        model = str(body.get("model", ""))
        turns = body.get("messages") or [{}]
        prompt = str(turns[-1].get("content", "")) if isinstance(turns[-1], dict) else ""
        state.received.append(Received(key, model, bool(body.get("stream")), time.time(), prompt, list(turns)))
        b = state.by_key.get(key, state.default)
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        if b.status != 200:
            error = {"type": "error", "error": {"type": "api_error", "message": b.message or f"{state.name} says {b.status}"}}
            return web.json_response(error, status=b.status)
        if body.get("stream"):
            return web.json_response({"type": "error", "error": {"type": "invalid_request_error", "message": "the fake upstream does not stream Anthropic messages"}}, status=400)
        return web.json_response(
            {
                "id": f"msg_{state.name}_{time.monotonic_ns()}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": f"Hello from {state.name}"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 3},
            }
        )

    async def responses(request: web.Request) -> web.StreamResponse:
        """OpenAI's /v1/responses, streamed (what LiteLLM calls for /v1/responses and, on an openai
        backend, /v1/messages): the same behaviours as chat streams (delays, faults)."""
        body = await request.json()
        key = _key_of(request)
        model = str(body.get("model", ""))
        state.received.append(Received(key, model, bool(body.get("stream")), time.time(), str(body.get("input", ""))[:200]))
        b = state.by_key.get(key, state.default)
        if b.silent:
            await _gone(request, b.stall_s)
            return web.Response(status=500)
        if b.status != 200:
            error = {"message": b.message or f"{state.name} says {b.status}", "type": b.error_type}
            return web.json_response({"error": error}, status=b.status)
        text = b.text if b.text is not None else ["Hello ", f"from {state.name}"]
        rid = f"resp_{state.name}_{time.monotonic_ns()}"

        def response(status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
            return {"id": rid, "object": "response", "created_at": int(time.time()), "status": status, "model": model,
                    "output": output, "usage": {"input_tokens": 5, "output_tokens": len(text), "total_tokens": 5 + len(text)}}  # fmt: skip

        def event(kind: str, **fields: Any) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if b.first_chunk_delay_s:
            await _gone(request, b.first_chunk_delay_s)
        await resp.write(event("response.created", sequence_number=0, response=response("in_progress", [])))
        for i, t in enumerate(text):
            if b.fault and i == b.fault_after:
                return await _fault(request, resp, b, state.name, model)
            if i and b.chunk_delay_s:
                await asyncio.sleep(b.chunk_delay_s)
            delta = {"sequence_number": i + 1, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": t}
            await resp.write(event("response.output_text.delta", **delta))
        message = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": "".join(text), "annotations": []}]}  # fmt: skip
        await resp.write(event("response.completed", sequence_number=len(text) + 1, response=response("completed", [message])))
        await resp.write_eof()
        return resp

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def control(request: web.Request) -> web.Response:
        body = await request.json()
        if "default" in body:
            state.default = Behavior(**body["default"])
        for key, b in (body.get("by_key") or {}).items():
            state.by_key[key] = Behavior(**b)
        if body.get("clear_keys"):
            state.by_key.clear()
        return web.json_response({"ok": True})

    async def requests_(_: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in state.received])

    async def reset(_: web.Request) -> web.Response:
        state.received.clear()
        state.max_in_flight = 0
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", chat)  # Azure
    app.router.add_post("/openai/deployments/{deployment}/embeddings", embeddings)
    app.router.add_post("/v1/messages", messages)  # Anthropic
    app.router.add_post("/v1/responses", responses)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/_control", control)
    app.router.add_get("/_requests", requests_)
    app.router.add_post("/_reset", reset)
    return app


class FakeUpstream:
    """An in-process fake upstream on its own event loop thread."""

    def __init__(self, name: str, port: int = 0) -> None:
        self.name = name
        self.port = port
        self._state = _State(name)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"fake-{name}", daemon=True)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def received(self) -> list[Received]:
        return list(self._state.received)

    @property
    def max_in_flight(self) -> int:
        """The most requests it was answering at once since the last reset."""
        return self._state.max_in_flight

    @property
    def streaming(self) -> int:
        """Stream responses it is writing right now (a stalled one counts until its client leaves)."""
        return self._state.streaming

    @property
    def connections(self) -> int:
        """Open client connections (kept-alive ones included)."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> FakeUpstream:
        self._thread.start()
        self.up()
        return self

    def up(self) -> None:
        """Listen (again) on the same port."""

        async def listen() -> None:
            self._runner = web.AppRunner(build_app(self._state), access_log=None)
            await self._runner.setup()
            self._site = web.TCPSite(self._runner, HOST, self.port, reuse_address=True)
            await self._site.start()
            server = self._site._server
            assert isinstance(server, asyncio.base_events.Server) and server.sockets
            self.port = server.sockets[0].getsockname()[1]

        if self._runner is None:
            self._call(listen())

    def down(self) -> None:
        """Stop listening and drop every open connection, as a scaled-down server does: clients
        get 'connection refused' (or a reset on a kept-alive connection)."""

        async def close() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner, self._site = None, None

        self._call(close())

    def set(self, behavior: Behavior | None = None, **by_key: Behavior) -> None:
        """Default behaviour for every key, and/or per key value (`set(**{"sk-a1": Behavior(503)})`)."""
        if behavior is not None:
            self._state.default = behavior
        self._state.by_key.update(by_key)

    def reset(self) -> None:
        self._state.received.clear()
        self._state.max_in_flight = 0
        self._state.by_key.clear()
        self._state.default = Behavior()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.down()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="upstream")
    args = parser.parse_args()
    web.run_app(build_app(_State(args.name)), host=HOST, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
