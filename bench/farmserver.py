"""Serve a feed farm on 127.0.0.1 with correct validators: Debian's nginx when it can, else a Python server.

nginx is the preferred server because a Python server can become the bottleneck of a benchmark whose
clients fetch thousands of feeds at once. Its configuration is generated into a temporary directory (nothing
of this machine is written into the repository): ``etag on`` (mtime-size validators), exact
``If-Modified-Since`` matching, keep-alive with an unlimited number of requests per connection, feed media
types by extension. When nginx is missing and we run as root with apt available, it is installed
(``nginx-light``); otherwise the Python fallback serves the same headers, with a message saying so.

    python bench/farmserver.py DIR [--port P]     # serve a farm in the foreground (the fallback server)
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TYPES = {".rss": "application/rss+xml", ".atom": "application/atom+xml", ".xml": "application/xml"}
START_TIMEOUT = 20.0

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    types {{ application/rss+xml rss; application/atom+xml atom; application/xml xml; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    etag on;
    if_modified_since exact;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location / {{ }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_nginx(install: bool = True) -> str | None:
    """The nginx binary; installs Debian's nginx-light when missing, if we may."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found or not install:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    print("nginx not found: installing Debian's nginx-light with apt-get ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx-light"]):
        try:
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
        except (subprocess.SubprocessError, OSError) as e:
            print(f"could not install nginx ({e})", file=sys.stderr)
            return None
    return find_nginx(install=False)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)  # a bounded retry while a separate process starts: there is no event to await
    raise RuntimeError(f"{what} did not listen on port {port} within {START_TIMEOUT:g}s")


@contextlib.contextmanager
def serve(root: Path, *, prefer_nginx: bool = True) -> Iterator[tuple[str, str]]:
    """Serve ``root`` over HTTP; yields (base URL, server name). The server is stopped on exit."""
    nginx = find_nginx() if prefer_nginx else None
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="farm-server-") as tmp:
        if nginx is not None:
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root.resolve()))
            cmd = [nginx, "-p", tmp, "-e", f"{tmp}/error.log", "-c", str(conf)]
            name = "nginx"
        else:
            print(
                "nginx unavailable: serving the farm with the Python fallback server (slower)",
                file=sys.stderr,
            )
            cmd = [sys.executable, str(Path(__file__).resolve()), str(root), "--port", str(port)]
            name = "python"
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            _wait_listening(port, proc, name)
            yield f"http://127.0.0.1:{port}", name
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM if name == "python" else signal.SIGQUIT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# --- the fallback server ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    root: Path

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        rel = self.path.split("?", 1)[0].lstrip("/")
        path = (self.root / rel).resolve()
        if self.root not in path.parents or not path.is_file():
            self._send(404, b"not found\n", {"Content-Type": "text/plain"})
            return
        st = path.stat()
        etag = f'"{int(st.st_mtime):x}-{st.st_size:x}"'  # nginx's form
        modified = email.utils.formatdate(int(st.st_mtime), usegmt=True)
        validators = {"ETag": etag, "Last-Modified": modified}
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if (inm is not None and etag in [t.strip() for t in inm.split(",")]) or (
            inm is None and ims == modified
        ):
            self._send(304, b"", validators)
            return
        kind = TYPES.get(path.suffix, "application/octet-stream")
        self._send(200, path.read_bytes(), {**validators, "Content-Type": kind})

    def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        if code != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    handler = type("Handler", (_Handler,), {"root": args.root.resolve()})
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving {args.root} on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
