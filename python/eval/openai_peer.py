"""A small OpenAI-compatible chat completions server: the protocol peer of recode-eval's
endpoint client in tests.

It binds 127.0.0.1 on a free port, prints the port on stdout, and answers
POST /v1/chat/completions with a canned reply chosen by the request: the first (needle, answer)
pair of the answers file whose needle occurs in the last user message. It checks the request
shape (model name, messages with role/content, numeric sampling fields), can fail the first K
requests with HTTP 503 (to exercise retries), and stops after --max-requests requests or
--lifetime seconds, whichever comes first.

usage: openai_peer.py ANSWERS.json --model NAME [--fail-first K] [--max-requests N] [--lifetime S]
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("answers")
    ap.add_argument("--model", required=True)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--max-requests", type=int, default=1000)
    ap.add_argument("--lifetime", type=float, default=120.0)
    args = ap.parse_args()
    with open(args.answers) as f:
        answers = json.load(f)
    lock = threading.Lock()
    state = {"requests": 0, "served": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            with lock:
                state["requests"] += 1
                n = state["requests"]
            if n >= args.max_requests:
                threading.Thread(target=server.shutdown, daemon=True).start()
            length = int(self.headers.get("Content-Length", "0"))
            try:
                req = json.loads(self.rfile.read(length))
            except ValueError:
                return self._reply(400, {"error": {"message": "invalid JSON"}})
            if self.path != "/v1/chat/completions":
                return self._reply(404, {"error": {"message": f"no route {self.path}"}})
            if n <= args.fail_first:
                return self._reply(503, {"error": {"message": "warming up"}})
            msgs = req.get("messages")
            ok = (req.get("model") == args.model and isinstance(msgs, list) and msgs
                  and all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in msgs)
                  and all(isinstance(req.get(k), (int, float)) for k in ("temperature", "top_p", "max_tokens")))
            if not ok:
                return self._reply(400, {"error": {"message": "bad request shape"}})
            user = [m["content"] for m in msgs if m["role"] == "user"][-1]
            text = next((a for needle, a in answers if needle in user), "I do not know.")
            with lock:
                state["served"] += 1
            self._reply(200, {
                "id": f"chatcmpl-{n}", "object": "chat.completion", "model": args.model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(text.split())},
            })

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    timer = threading.Timer(args.lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    print(server.server_address[1], flush=True)
    server.serve_forever()
    print(json.dumps(state), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
