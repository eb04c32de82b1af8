"""A stand-in server process for ManagedServer's lifecycle tests (run as a script).

``--mode ok``: ready at once; ``die``: crashes on its first completion request; ``crash``: exits
during start-up; ``never``: /health answers 503 forever; ``hang``: completion requests never
end (``--hang-after N``: those after the first N). Only streamed completion requests (the
benchmark's) count; others (the quality probe's) get HTTP 500 at once. It also starts a child
process (as an engine starts workers) and logs the child's pid, so tests can check the whole group
is stopped, and logs the NCCL_NVLS_ENABLE it was started with.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", default="ok")
    parser.add_argument("--hang-after", type=int, default=None)
    args, _ = parser.parse_known_args()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(f"child pid {child.pid}", flush=True)
    print(f"NCCL_NVLS_ENABLE={os.environ.get('NCCL_NVLS_ENABLE', '<unset>')}", flush=True)
    if args.mode == "crash":
        print("RuntimeError: simulated start-up failure (out of memory)", flush=True)
        sys.exit(1)

    served: list[str] = []  # completion requests received

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(503 if args.mode == "never" else 200, {})
            elif self.path == "/v1/models":
                self._reply(200, {"data": [{"id": "proc-model"}]})
            else:
                self._reply(404, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not body.get("stream"):  # the quality probe's calls: refused, never counted
                self._reply(500, {"error": {"message": "not implemented"}})
                return
            if args.mode == "die":
                print("fatal: simulated engine crash", flush=True)
                os._exit(3)
            served.append(self.path)
            if args.mode == "hang" or (
                args.hang_after is not None and len(served) > args.hang_after
            ):
                print("hanging request", flush=True)
                time.sleep(600)
            self._reply(500, {"error": {"message": "not implemented"}})

        def _reply(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *a: object) -> None:
            pass

    print("serving", flush=True)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
