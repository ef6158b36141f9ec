"""A local chat-completions server speaking the OpenAI protocol, whose replies a test picks."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from factories import free_port

PASSAGE = re.compile(r"^\[(\d+)\] [^\n]*\n(.+?)(?=\n\n\[\d+\] |\n\nQuestion: )", re.M | re.S)
WORD = re.compile(r"\w{4,}")


@dataclass
class Received:
    """What the server was sent (bodies and headers, in order) and how it answers next.

    mode: "cite" (a sentence of the passage closest to the question, cited), "no_answer",
    "uncited", "cite_unknown" (cites [9]), "error" (HTTP 500), "slow" (answers after
    delay_s), "invalid_json"."""

    mode: str = "cite"
    delay_s: float = 3.0
    model: str = "served-model"
    bodies: list[dict] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def grounded_reply(prompt: str) -> str:
    """The first sentence of the passage sharing most words with the question, cited."""
    question = prompt.rsplit("Question: ", 1)[-1]
    asked = {w.lower() for w in WORD.findall(question)}
    passages = [(int(n), text.strip()) for n, text in PASSAGE.findall(prompt)]
    n, text = max(passages, key=lambda p: len(asked & {w.lower() for w in WORD.findall(p[1])}))
    sentence = text.split(". ")[0].rstrip(".")
    return f"{sentence} [{n}]."


def chat_app(received: Received) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        received.bodies.append(body)
        received.headers.append(dict(request.headers))
        prompt = body["messages"][-1]["content"]
        mode = received.mode
        if mode == "error":
            return JSONResponse({"error": {"message": "model overloaded"}}, status_code=500)
        if mode == "invalid_json":
            return PlainTextResponse('{"choices": [', media_type="application/json")
        if mode == "slow":
            await asyncio.sleep(received.delay_s)
        content = {
            "cite": grounded_reply(prompt),
            "slow": grounded_reply(prompt),
            "no_answer": "NO_ANSWER",
            "uncited": "Vaccines are stored between 2 and 8 °C.",
            "cite_unknown": "Vaccines are stored between 2 and 8 °C [9].",
        }[mode]
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": received.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }

    return app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve app over real HTTP on a free local port, in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the local test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
