"""What the stub servers share: a call log, planned failures, and a WSGI app served on loopback in a thread."""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import asdict, dataclass

from flask import Flask, Response, g, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

CONTROL_PREFIX = "/_stub/"


def _flat(multi) -> dict:
    """A MultiDict as a dict: one value as itself, a repeated field (StatusCallbackEvent) as a list."""
    return {key: values[0] if len(values) == 1 else values for key, values in multi.lists()}


class CallLog:
    """Every API request a stub received, oldest first; safe to read while handler threads append."""

    def __init__(self) -> None:
        self._records: list[dict] = []
        self._lock = threading.Lock()

    def open(self) -> dict:
        """Record the current request as it arrives; its answer is filled in by `close`."""
        record = {
            "method": request.method,
            "path": request.path,
            "params": _flat(request.args),
            "form": _flat(request.form),
            "json": request.get_json(force=True, silent=True),  # wechatpy sends no JSON content type
            "auth": request.authorization.username if request.authorization else None,
            "time": time.time(),
            "status": None,
            "response": None,
        }
        with self._lock:
            self._records.append(record)
        return record

    def close(self, record: dict, response: Response) -> None:
        with self._lock:
            record["status"] = response.status_code
            record["response"] = response.get_json(silent=True)

    def snapshot(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._records if path is None or r["path"].startswith(path)]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


@dataclass
class PlannedFailure:
    times: int = 1
    path: str | None = None  # only requests whose path starts with this; None: any API request
    status: int | None = None  # answer with this HTTP status
    code: int | None = None  # answer with this vendor error code (errcode / Twilio code)
    sleep: float | None = None  # wait this long first (longer than the client's timeout: a timeout)
    message: str | None = None


class FailurePlan:
    """Failures a test asked for, used up by the next matching requests in the order they were planned."""

    def __init__(self) -> None:
        self._planned: list[PlannedFailure] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def add(self, failure: PlannedFailure) -> None:
        if failure.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._planned.append(failure)

    def take(self, path: str) -> PlannedFailure | None:
        with self._lock:
            for failure in self._planned:
                if failure.path is None or path.startswith(failure.path):
                    failure.times -= 1
                    if failure.times == 0:
                        self._planned.remove(failure)
                    return PlannedFailure(**{**asdict(failure), "times": 1})
        return None

    def sleep(self, seconds: float) -> None:
        # Interruptible, so a reset or a stopped server does not leave handler threads sleeping on.
        self._wake.wait(seconds)

    def clear(self) -> None:
        with self._lock:
            self._planned.clear()
            self._wake.set()
            self._wake = threading.Event()


class StubApp:
    """A Flask app that logs its API requests and applies planned failures before its handlers run.

    `failure_response(failure)` is the vendor-specific answer to a planned failure.
    """

    def __init__(self, name: str) -> None:
        self._server: ServerThread | None = None
        self.call_log = CallLog()
        self.failures = FailurePlan()
        self.flask = Flask(name)
        self.flask.before_request(self._before)
        self.flask.after_request(self._after)
        self.flask.add_url_rule(f"{CONTROL_PREFIX}calls", "stub_calls", self._http_calls, methods=["GET"])
        self.flask.add_url_rule(f"{CONTROL_PREFIX}fail", "stub_fail", self._http_fail, methods=["POST"])
        self.flask.add_url_rule(f"{CONTROL_PREFIX}reset", "stub_reset", self._http_reset, methods=["POST"])

    def failure_response(self, failure: PlannedFailure) -> Response:
        raise NotImplementedError

    def failure_key(self) -> str:
        """What a planned failure's `path` is matched against (an RPC API like Aliyun's posts every action to /)."""
        return request.path

    def start(self, *, host: str = "127.0.0.1", port: int = 0):
        """Serve from a background thread (tests); `base_url` is known once this returns."""
        self._server = ServerThread(self.flask, host=host, port=port).start()
        return self

    def serve(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve in this thread with an access log (the standalone mode) until interrupted."""
        self._server = ServerThread(self.flask, host=host, port=port, quiet=False)
        print(f"{type(self).__name__} listening on {self._server.base_url}", flush=True)
        self._server.serve_forever()

    def stop(self) -> None:
        self.failures.clear()  # wakes handlers sleeping on a planned timeout
        self._server.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def calls(self) -> list[dict]:
        """Copies of the API requests received so far (control requests under /_stub/ are not logged)."""
        return self.call_log.snapshot()

    def calls_to(self, path: str) -> list[dict]:
        return self.call_log.snapshot(path)

    def reset(self) -> None:
        self.call_log.clear()
        self.failures.clear()

    def fail(self, *, times: int = 1, path: str | None = None, status: int | None = None,
             code: int | None = None, sleep: float | None = None, message: str | None = None) -> None:
        self.failures.add(PlannedFailure(times=times, path=path, status=status, code=code, sleep=sleep,
                                         message=message))

    def _before(self):
        if request.path.startswith(CONTROL_PREFIX):
            return None
        g.stub_record = self.call_log.open()
        failure = self.failures.take(self.failure_key())
        if failure is None:
            return None
        if failure.sleep:
            self.failures.sleep(failure.sleep)
        if failure.status is None and failure.code is None:
            return None  # only slow: the request then goes through normally
        return self.failure_response(failure)

    def _after(self, response: Response) -> Response:
        record = g.pop("stub_record", None)
        if record is not None:
            self.call_log.close(record, response)
        return response

    def _http_calls(self):
        return jsonify(calls=self.call_log.snapshot(request.args.get("path")))

    def _http_fail(self):
        body = request.get_json(force=True)
        fields = {k: body[k] for k in ("times", "path", "status", "code", "sleep", "message") if k in body}
        self.fail(**fields)
        return jsonify(ok=True)

    def _http_reset(self):
        self.reset()
        return jsonify(ok=True)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # tests read the call log, not the access log
        pass


class ServerThread:
    """Serves a WSGI app on loopback from a daemon thread; port 0 picks a free port."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = True):
        self._server = make_server(host, port, app, threaded=True,
                                   request_handler=_QuietHandler if quiet else None)
        self.port = self._server.server_port
        self.base_url = f"http://{host}:{self.port}"
        # A short poll interval makes stop() (which waits for the serving loop to notice) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"stub:{self.port}", daemon=True)

    def start(self) -> "ServerThread":
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the standalone `python -m` mode) until interrupted."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()  # waits for serve_forever to return, so only if it runs
            self._thread.join()
        self._server.server_close()
