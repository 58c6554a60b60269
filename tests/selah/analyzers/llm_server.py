"""A scripted OpenAI-compatible chat-completions server on loopback, for the `llm` backend's tests:
`GET /v1/models` and `POST /v1/chat/completions` answering scripted replies (`http.server` in a
thread). The fixtures `llm_server` and `llm_server_settings` are in `tests/app/conftest.py`."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "scripted-model"
LYRICS = ("Grace that found me in the dark\nLight that kindled in my heart\n"
          "I will sing of Your mercy all my days\n")
ANSWER = {
    "verdict": "freely_listen", "score": 91, "confidence": 0.8,
    "biblical_themes": [{"theme": "Grace", "confidence": 0.9},
                        {"theme": "worship and adoration", "confidence": 0.7},
                        {"theme": "Dragons", "confidence": 0.9}],
    "concerns": [],
    "supporting_scripture": [{"reference": "ephesians 2:8", "theme": "Grace"},
                             {"reference": "John 3:99", "theme": "Grace"}],
    "narrative_voice": "artist", "lament_filter_applied": False, "sentiment": "positive",
    "emotion": "joy", "summary": "A song of grace.",
}


def completion(content, tokens=None, finish_reason="stop") -> dict:
    """A chat-completions reply whose message is `content` (a dict is dumped as JSON)."""
    text = content if isinstance(content, str) else json.dumps(content)
    choice = {"index": 0, "message": {"role": "assistant", "content": text},
              "finish_reason": finish_reason}
    if tokens is not None:
        choice["logprobs"] = {"content": tokens}
    return {"id": "x", "object": "chat.completion", "model": MODEL, "choices": [choice]}


class ScriptedServer:
    """A loopback server: `GET /v1/models` lists `models`; each POST takes the next scripted reply
    `(status, headers, body, delay)` (a callable gets the request body), else a valid answer."""

    def __init__(self):
        self.models = [MODEL]
        self.replies: list = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status, headers, body, delay=0.0):
                time.sleep(delay)
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                try:
                    self.send_response(status)
                    for key, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def do_GET(self):
                with server.lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers)})
                if self.path == "/v1/models":
                    self._send(200, {}, {"object": "list", "data": [
                        {"id": m, "object": "model"} for m in server.models]})
                else:
                    self._send(404, {}, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "body": body,
                                            "headers": dict(self.headers)})
                    reply = server.replies.pop(0) if server.replies else None
                if callable(reply):
                    reply = reply(body)
                self._send(*(reply or (200, {}, completion(ANSWER))))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def script(self, *replies) -> None:
        """Queue replies for the next POSTs."""
        with self.lock:
            self.replies.extend(replies)

    @property
    def posts(self) -> list[dict]:
        """The chat requests received so far."""
        return [r for r in self.requests if "body" in r]

    def close(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
