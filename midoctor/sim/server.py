"""The IMDS + ARM simulator: a real HTTP server on loopback that answers like Azure does.

    with Simulator("healthy-system") as sim:
        httpx.get(sim.url + "/metadata/identity/oauth2/token",
                  params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"},
                  headers={"Metadata": "true"})

Scenario file schema: see README.md in this package. Fidelity notes (what is VERBATIM from captures and
what is RECONSTRUCTED) live next to each body in imds.py, arm.py and impostor.py.

Order of processing for one request (why: scripted faults must not be eaten by malformed requests,
e.g. azure-identity's header-less probe, while network-level faults hit everything):
  1. impostor mode answers everything;
  2. /subscriptions/... goes to the simulated ARM (no faults);
  3. HEAD gets the IIS 400; non-/metadata paths get a 404;
  4. fault target = "identity" for the token endpoint, "instance" for every other /metadata path:
     hang -> wait until stop(); delay_seconds -> sleep (interruptible);
  5. IMDS preflight (verb, Metadata header, X-Forwarded-For, duplicate params, api-version);
  6. next scripted step (sequence, then `then`); a non-ok step answers with its status;
  7. optional identity concurrency limit -> 429;
  8. the normal answer.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Union

from . import imds
from .arm import handle_arm, is_arm_path
from .impostor import IMPOSTORS
from .model import Step, World
from .request import Request
from .responses import Response, compact_json, imds_response
from .scenario import Scenario, load_scenario

MAX_DRAIN_BYTES = 1 << 20  # request bodies are never needed; read at most this much to keep the connection


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int  # 0 = no response was sent (hang, or stopped mid-delay)
    started: float
    finished: float


class _State:
    """Everything handlers share; every mutation holds the lock."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.records: list[RequestRecord] = []
        self.issued: list[str] = []
        self._issued_set: set[str] = set()
        self.counters: dict[str, int] = {}
        self.inflight_identity = 0
        self.peak_identity = 0
        self.connections: set[socket.socket] = set()

    def next_step(self, target: str) -> Step:
        fault = self.world.fault(target)
        with self.lock:
            index = self.counters.get(target, 0)
            self.counters[target] = index + 1
        return fault.sequence[index] if index < len(fault.sequence) else fault.then

    def issue(self, token: str) -> None:
        with self.lock:
            self.issued.append(token)
            self._issued_set.add(token)

    def is_issued(self, token: str) -> bool:
        with self.lock:
            return token in self._issued_set

    def enter_identity(self) -> int:
        with self.lock:
            self.inflight_identity += 1
            self.peak_identity = max(self.peak_identity, self.inflight_identity)
            return self.inflight_identity

    def leave_identity(self) -> None:
        with self.lock:
            self.inflight_identity -= 1

    def record(self, rec: RequestRecord) -> None:
        with self.lock:
            self.records.append(rec)

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.counters.clear()
            self.peak_identity = self.inflight_identity

    def track(self, conn: socket.socket, add: bool) -> None:
        with self.lock:
            (self.connections.add if add else self.connections.discard)(conn)


class _Engine:
    """Turns a parsed Request into a Response (or None: send nothing and drop the connection)."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.world = state.world

    def respond(self, req: Request) -> Optional[Response]:
        world = self.world
        if world.impostor:
            return IMPOSTORS[world.impostor](req)
        if is_arm_path(req.path):
            return handle_arm(req, world, self.state.is_issued)
        if req.method == "HEAD":
            return imds.head_response(world)
        if not req.path.lower().startswith("/metadata"):
            return imds.not_found(world)
        if not imds.is_token_path(req.path):
            return self._imds(req, "instance")
        inflight = self.state.enter_identity()
        try:
            return self._imds(req, "identity", inflight)
        finally:
            self.state.leave_identity()

    def _imds(self, req: Request, target: str, inflight: int = 0) -> Optional[Response]:
        world, stop = self.world, self.state.stop_event
        fault = world.fault(target)
        if fault.hang:
            stop.wait()  # an Event, not sleep(): stop() must be able to release it
            return None
        if fault.delay_seconds and stop.wait(fault.delay_seconds):
            return None
        rejected = imds.preflight(req, world)
        if rejected is not None:
            return rejected
        step = self.state.next_step(target)
        if step.delay_seconds and stop.wait(step.delay_seconds):
            return None
        if step.status is not None:
            return imds.scripted(step, world, imds.kind_of(req.path))
        limit = world.identity_max_concurrent
        if target == "identity" and limit is not None and inflight > limit:
            # "20 requests per second and 5 concurrent requests" for Managed Identity (imds-fidelity 1.1).
            return imds.too_many_requests(world)
        return imds.handle_metadata(req, world, self.state.issue)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # real IMDS is HTTP/1.1 with keep-alive
    timeout = 60  # idle keep-alive connections release their thread eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.state.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.state.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the `midoctor sim` CLI prints its own lines from Simulator.requests."""

    def version_string(self) -> str:
        return self.server.state.world.imds_server

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Malformed requests: answer in IMDS style instead of BaseHTTPServer's HTML page."""
        world = self.server.state.world
        body = compact_json({"error": "invalid_request", "error_description": message or _phrase(code)})
        self.close_connection = True
        try:
            self._write(imds_response(code, body, world.imds_server))
        except OSError:
            pass

    def _dispatch(self) -> None:
        started = time.time()
        try:
            self._drain_body()
        except OSError:
            self.close_connection = True  # client went away mid-body
            return
        req = Request(self.command, self.path, (), tuple(self.headers.items()), "")
        try:
            req = Request.parse(self.command, self.path, list(self.headers.items()), self._base_url())
            resp = self.server.engine.respond(req)
        except Exception as exc:  # noqa: BLE001 - never let one request take the server down
            resp = self._internal_error(exc)
        # Record before writing: a client that got its answer must already see the record.
        self._record(req, resp.status if resp is not None else 0, started)
        if resp is None:
            self.close_connection = True  # hang / stopped mid-delay: drop without answering
            return
        try:
            self._write(resp)
        except OSError:
            self.close_connection = True

    def _internal_error(self, exc: Exception) -> Response:
        world = self.server.state.world
        body = compact_json({"error": "server_error",
                             "error_description": f"midoctor simulator internal error: {type(exc).__name__}"})
        self.close_connection = True  # handler state is suspect; start the next request on a fresh socket
        return imds_response(500, body, world.imds_server)

    def _record(self, req: Request, status: int, started: float) -> None:
        self.server.state.record(RequestRecord(
            method=req.method, path=req.path, query=req.query_dict(), headers=dict(req.headers),
            status=status, started=started, finished=time.time()))

    def _drain_body(self) -> None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # we never need the body; don't try to de-chunk it
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
            self.close_connection = True
        if length > MAX_DRAIN_BYTES:
            self.close_connection = True
        elif length > 0:
            self.rfile.read(length)

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.server.url

    def _write(self, resp: Response) -> None:
        version = resp.http_version or self.protocol_version
        if resp.close or version == "HTTP/1.0":
            self.close_connection = True
        headers = list(resp.headers)
        if self.close_connection and resp.header("Connection") is None:
            # Tell keep-alive clients, or they would reuse a socket we are about to close.
            headers.append(("Connection", "close"))
        reason = resp.reason or _phrase(resp.status)
        head = [f"{version} {resp.status} {reason}"] + [f"{k}: {v}" for k, v in headers]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace")
        if self.command != "HEAD":
            payload += resp.body
        self.wfile.write(payload)
        self.wfile.flush()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # hung handlers must never keep the process alive

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.engine = _Engine(state)
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client resetting its connection is not worth a traceback on stderr."""


class Simulator:
    """Run a scenario on a loopback port. Thread-safe accessors; use as a context manager."""

    def __init__(self, scenario: Union[Scenario, str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.world = self.scenario.world()
        self.host = host
        self.port = port
        self._state = _State(self.world)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("simulator already running")
        self._state.stop_event = threading.Event()
        self._server = _Server((self.host, self.port), self._state)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"midoctor-sim-{self.scenario.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._state.stop_event.set()  # releases hung / delayed handlers first
        server.shutdown()
        self._close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=2)
        self._server, self._thread = None, None

    def _close_connections(self) -> None:
        with self._state.lock:
            conns = list(self._state.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- observation ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.url

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def requests(self) -> list[RequestRecord]:
        with self._state.lock:
            return list(self._state.records)

    @property
    def issued_tokens(self) -> list[str]:
        with self._state.lock:
            return list(self._state.issued)

    @property
    def max_concurrent_identity(self) -> int:
        with self._state.lock:
            return self._state.peak_identity

    def reset(self) -> None:
        """Forget recorded requests and restart scripted sequences (issued tokens stay valid for ARM)."""
        self._state.reset()
