import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from mlcycle.contract import infer_contract
from mlcycle.data import DEMO_LABEL, DEMO_TIMESTAMP, make_demo_dataset

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_frame():
    return make_demo_dataset(n_rows=6000, seed=7)


@pytest.fixture(scope="session")
def contract(demo_frame):
    return infer_contract(demo_frame, DEMO_LABEL, timestamp=DEMO_TIMESTAMP)


@pytest.fixture(scope="session")
def splits(demo_frame, contract):
    from components.split.logic import split_frame

    return split_frame(demo_frame, contract, seed=7)


@pytest.fixture(scope="session")
def fitted_bundles(splits, contract):
    """One trained bundle per family, in memory: {family: ModelBundle}."""
    from mlcycle.models import fit_bundle

    train, val, _ = splits
    params = {"xgboost": {"n_estimators": 60}}
    return {
        family: fit_bundle(family, train, val, contract, seed=7, params=params.get(family))[0]
        for family in ("baseline", "logreg", "hgb", "xgboost")
    }


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory, fitted_bundles):
    """The same bundles saved: {family: directory}."""
    out = {}
    for family, bundle in fitted_bundles.items():
        out[family] = tmp_path_factory.mktemp(family) / "model"
        bundle.save(out[family])
    return out


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory):
    """A real MinIO server process (built from source by scripts/ensure-minio.sh when absent)."""
    from devtools.minio import MinioServer

    if not (os.environ.get("MINIO_BIN") or __import__("shutil").which("minio")):
        pytest.fail("MinIO binary not found: run the tests through `make test` (it builds MinIO) or set MINIO_BIN")
    server = MinioServer(tmp_path_factory.mktemp("minio") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def register_passed(splits, contract):
    """``register`` as the pipeline calls it after a passed gate, on the shared training split and contract:
    ``register_passed(model_dir, registry, fingerprint, run_id, metrics=None, reasons=(), model_name="fraud", **kw)``
    (``kw``: register's keyword options, e.g. auto_promote, drift_dir)."""
    from components.register.logic import register

    def call(model_dir, registry, fingerprint, run_id, metrics=None, reasons=(), model_name="fraud", **kw):
        evaluation, decision = {"metrics": metrics or {}}, {"passed": True, "reasons": list(reasons)}
        train = splits[0]
        return register(
            model_dir, contract, train, evaluation, decision, registry, model_name, fingerprint, run_id, **kw
        )

    return call


@pytest.fixture(scope="session")
def served(tmp_path_factory, splits, contract, model_dirs, register_passed):
    """A registry with one production version (XGBoost + alibi-detect drift detector), as the pipeline writes it."""
    from components.build_detector.logic import build_detector
    from mlcycle.registry import open_registry

    root = tmp_path_factory.mktemp("served")
    train, _, _ = splits
    build_detector(train, contract, root / "drift", backend="alibi")
    registry = open_registry(root / "registry")
    result = register_passed(
        model_dirs["xgboost"], registry, "f" * 64, "test", auto_promote=True, drift_dir=root / "drift"
    )
    return {
        "source": f"{root / 'registry'}#fraud@production",
        "version": result.version,
        "root": root,
        "model_dir": model_dirs["xgboost"],
    }


KFP_API = "/apis/v2beta1"


class FakeKfp:
    """A real local HTTP server answering the KFP v2beta1 REST paths the installed kfp SDK calls (kfp_server_api:
    GET /healthz, GET|POST /experiments, GET|POST /recurringruns, POST /runs, GET /runs/{id}); records every request.

    ``fail`` = (status, message): the answer to a create (run or recurring run). ``run_states``: what each read
    of a run answers, in turn, the last one repeated: a state name, a dict of run fields, or an int (that HTTP
    error status). ``existing``: the recurring runs a list finds."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail: tuple[int, str] | None = None
        self.existing: list[dict] = []
        self.run_states: list = ["RUNNING"]
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                url = urlparse(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with server.lock:
                    server.requests.append(
                        {"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body}
                    )
                route = (self.command, url.path)
                if route == ("GET", f"{KFP_API}/healthz"):
                    return self._answer(200, {"multi_user": False})
                if route == ("GET", f"{KFP_API}/experiments"):
                    return self._answer(200, {})
                if route == ("POST", f"{KFP_API}/experiments"):
                    return self._answer(200, {"experiment_id": "exp-1", "display_name": body["display_name"]})
                if route == ("GET", f"{KFP_API}/recurringruns"):
                    # the field's wire name, as kfp_server_api's V2beta1ListRecurringRunsResponse maps it
                    return self._answer(200, {"recurringRuns": server.existing} if server.existing else {})
                if self.command == "POST" and url.path in (f"{KFP_API}/recurringruns", f"{KFP_API}/runs"):
                    if server.fail:
                        code, message = server.fail
                        return self._answer(code, {"code": 3, "message": message})
                    if url.path.endswith("/recurringruns"):
                        return self._answer(200, {**body, "recurring_run_id": "rr-1", "status": "ENABLED"})
                    return self._answer(
                        200, {**body, "run_id": f"run-{len(server.created_runs())}", "state": "PENDING"}
                    )
                if self.command == "GET" and url.path.startswith(f"{KFP_API}/runs/"):
                    run_id = url.path.rsplit("/", 1)[1]
                    with server.lock:
                        answer = server.run_states[0] if server.run_states else "RUNNING"
                        if len(server.run_states) > 1:
                            server.run_states.pop(0)
                    if isinstance(answer, int):
                        return self._answer(answer, {"code": 14, "message": "the KFP API is not available"})
                    fields = {"state": answer} if isinstance(answer, str) else answer
                    return self._answer(200, {"run_id": run_id, "experiment_id": "exp-1", **fields})
                return self._answer(404, {"code": 5, "message": f"no route {route}"})

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: the kernel picks a free one
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _posted(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if (r["method"], r["path"]) == ("POST", path)]

    def created(self) -> list[dict]:
        """The recurring-run creates."""
        return self._posted(f"{KFP_API}/recurringruns")

    def created_runs(self) -> list[dict]:
        return self._posted(f"{KFP_API}/runs")

    def polls(self, run_id: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if (r["method"], r["path"]) == ("GET", f"{KFP_API}/runs/{run_id}"))


@pytest.fixture
def kfp_api(tmp_path, monkeypatch):
    """A ``FakeKfp`` for one test (HOME moved: no ~/.config/kfp/context.json of this machine's user)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    server = FakeKfp()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
