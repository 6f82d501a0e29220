"""A local stand-in for the Anthropic Messages and OpenAI chat-completions APIs.

It speaks their wire formats (request paths, JSON bodies, usage fields, error bodies,
`retry-after-ms`) on 127.0.0.1, so the official SDKs run unmodified against it. Replies come
from a `respond(system, prompt)` function; `fail` lists HTTP statuses to answer first (a 429,
a 500), which the SDKs must retry. Usage counts whitespace-separated words as tokens.
It lives with the tests (the benchmarks import it from here too): test code, not part of the
package.
"""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tokens(text: str) -> int:
    return len(text.split())


class StubAPI:
    def __init__(self, respond: Callable[[str, str], str], fail: tuple[int, ...] = (),
                 raw: tuple[bytes, str] | None = None):
        self.respond = respond
        self.failures = list(fail)
        self.raw = raw  # (body, content type): every 200 answer sends it as it is
        self.requests: list[dict] = []  # every request that got a 200: path, headers, body
        self.statuses: list[int] = []  # every status answered, in order
        self.in_flight = self.max_in_flight = 0  # concurrent requests (now, at most)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, path: str, headers: dict, body: dict) -> tuple[int, dict, dict]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._reply(path, headers, body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _reply(self, path: str, headers: dict, body: dict) -> tuple[int, dict, dict]:
        with self.lock:
            status = self.failures.pop(0) if self.failures else 200
            self.statuses.append(status)
            if status == 200:
                self.requests.append({"path": path, "headers": headers, "body": body})
        if status != 200:
            kind = "rate_limit_error" if status == 429 else "api_error"
            error = {"type": "error", "error": {"type": kind, "message": f"stub {status}"}}
            return status, error, {"retry-after-ms": "5"}
        if path.endswith("/messages"):  # Anthropic Messages
            system, prompt = body.get("system", ""), body["messages"][-1]["content"]
            text = self.respond(system, prompt)
            return 200, {
                "id": "msg_stub", "type": "message", "role": "assistant",
                "model": body["model"], "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": tokens(system) + tokens(prompt),
                          "output_tokens": tokens(text)}}, {}
        messages = body["messages"]  # OpenAI chat completions
        system = " ".join(m["content"] for m in messages if m["role"] == "system")
        prompt = messages[-1]["content"]
        text = self.respond(system, prompt)
        n_in, n_out = tokens(system) + tokens(prompt), tokens(text)
        return 200, {
            "id": "chatcmpl-stub", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": n_in, "completion_tokens": n_out,
                      "total_tokens": n_in + n_out}}, {}

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith(("/v1/messages", "/v1/chat/completions")):
                    status, payload, extra = 404, {"error": {"message": "no such path"}}, {}
                else:
                    status, payload, extra = stub._answer(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                data, kind = json.dumps(payload).encode(), "application/json"
                if stub.raw and status == 200:
                    data, kind = stub.raw
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep the test output clean
                pass

        return Handler
