"""`mlcycle schedule`: the schedule trigger on a cluster is a KFP recurring run of the training pipeline.

There is no KFP API server here: a real local HTTP server answers the KFP v2beta1 REST paths the installed
SDK calls (kfp_server_api: GET /apis/v2beta1/healthz, GET|POST /apis/v2beta1/experiments,
GET|POST /apis/v2beta1/recurringruns) and records every request, so the tests check what the kfp Client
really sends — not what a live KFP then does with it."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from cli.main import main as cli
from mlcycle.process import free_port

pytestmark = pytest.mark.unit
API = "/apis/v2beta1"


class FakeKfp:
    """Records requests; answers like the KFP API server, or with ``fail`` = (status, message) on the create."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail: tuple[int, str] | None = None
        self.existing: list[dict] = []
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
                server.requests.append(
                    {"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body}
                )
                route = (self.command, url.path)
                if route == ("GET", f"{API}/healthz"):
                    return self._answer(200, {"multi_user": False})
                if route == ("GET", f"{API}/experiments"):
                    return self._answer(200, {})
                if route == ("POST", f"{API}/experiments"):
                    return self._answer(200, {"experiment_id": "exp-1", "display_name": body["display_name"]})
                if route == ("GET", f"{API}/recurringruns"):
                    # the field's wire name, as kfp_server_api's V2beta1ListRecurringRunsResponse maps it
                    return self._answer(200, {"recurringRuns": server.existing} if server.existing else {})
                if route == ("POST", f"{API}/recurringruns"):
                    if server.fail:
                        code, message = server.fail
                        return self._answer(code, {"code": 3, "message": message})
                    return self._answer(200, {**body, "recurring_run_id": "rr-1", "status": "ENABLED"})
                return self._answer(404, {"code": 5, "message": f"no route {route}"})

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: the kernel picks a free one
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def created(self) -> list[dict]:
        return [r for r in self.requests if (r["method"], r["path"]) == ("POST", f"{API}/recurringruns")]


@pytest.fixture
def kfp_api(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json of this machine's user
    server = FakeKfp()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _schedule(host, *extra):
    return cli(
        [
            "schedule",
            "--host",
            host,
            "--registry",
            "s3://mlcycle-models",
            "--source",
            "traffic",
            "--model",
            "fraud-detector",
            "--label",
            "is_fraud",
            "--days",
            "3",
            *extra,
        ]
    )


def test_a_cron_schedule_is_a_recurring_run_with_one_run_at_a_time(kfp_api, capsys):
    assert _schedule(kfp_api.url, "--cron", "0 0 3 * * *", "--timestamp-column", "received_at") == 0
    out = capsys.readouterr().out
    assert "scheduled recurring run rr-1 (fraud-detector-scheduled-retrain, 0 0 3 * * *, max_concurrency 1)" in out
    experiment = [r for r in kfp_api.requests if (r["method"], r["path"]) == ("POST", f"{API}/experiments")]
    assert experiment and experiment[0]["body"]["display_name"] == "mlcycle"
    (create,) = kfp_api.created()
    body = create["body"]
    assert body["experiment_id"] == "exp-1" and body["display_name"] == "fraud-detector-scheduled-retrain"
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert int(body["max_concurrency"]) == 1 and body["no_catchup"] is True and body["mode"] == "ENABLE"
    params = body["runtime_config"]["parameters"]
    assert params["source"] == "traffic://s3://mlcycle-models#fraud-detector?days=3"
    assert params["trigger"] == "schedule" and params["deploy"] is True and params["auto_promote"] is False
    assert params["label"] == "is_fraud" and params["task"] == "classification"
    assert params["registry_uri"] == "s3://mlcycle-models" and params["model_name"] == "fraud-detector"
    assert params["timestamp_column"] == "received_at" and params["n_trials"] == 6 and params["seed"] == 42
    # the compiled pipeline travels in the request (with its platform spec: the S3 Secret as env), and every
    # parameter sent is one of its inputs
    spec = body["pipeline_spec"]["pipeline_spec"]
    assert "mlcycle-s3-pipeline" in json.dumps(body["pipeline_spec"]["platform_spec"])
    assert spec["pipelineInfo"]["name"] == "mlcycle-training"
    assert set(params) <= set(spec["root"]["inputDefinitions"]["parameters"])
    # the schedule was looked for by name in the experiment before creating a second one
    listed = [r for r in kfp_api.requests if (r["method"], r["path"]) == ("GET", f"{API}/recurringruns")]
    assert listed and listed[0]["query"]["experiment_id"] == ["exp-1"]
    assert "fraud-detector-scheduled-retrain" in listed[0]["query"]["filter"][0]


def test_an_interval_schedule_and_the_dry_run_print_the_same_spec(kfp_api, capsys):
    assert _schedule(kfp_api.url, "--interval", "6h", "--dry-run", "--trials", "2") == 0
    printed = json.loads(capsys.readouterr().out)
    assert not kfp_api.requests  # a dry run sends nothing
    assert printed["trigger"] == {"periodic_schedule": {"interval_second": 21600}}
    assert printed["max_concurrency"] == 1 and printed["no_catchup"] is True
    assert _schedule(kfp_api.url, "--interval", "6h", "--trials", "2") == 0
    (create,) = kfp_api.created()
    body = create["body"]
    assert int(body["trigger"]["periodic_schedule"]["interval_second"]) == 21600
    assert body["runtime_config"]["parameters"] == printed["parameters"]
    assert printed["parameters"]["n_trials"] == 2 and printed["parameters"]["trigger"] == "schedule"


def test_an_existing_schedule_of_that_name_is_not_doubled(kfp_api, capsys):
    kfp_api.existing = [{"recurring_run_id": "rr-0", "display_name": "fraud-detector-scheduled-retrain"}]
    assert _schedule(kfp_api.url, "--interval", "1d") == 1
    err = capsys.readouterr().err
    assert "already has recurring run 'fraud-detector-scheduled-retrain' (rr-0)" in err
    assert not kfp_api.created()


@pytest.mark.parametrize("status", [400, 503])
def test_a_refused_request_is_an_error(kfp_api, capsys, status):
    kfp_api.fail = (status, "invalid cron expression")
    assert _schedule(kfp_api.url, "--interval", "1d") == 1
    err = capsys.readouterr().err
    assert f"could not create the recurring run on {kfp_api.url}: ApiException: ({status})" in err
    assert "invalid cron expression" in err and "Traceback" not in err


def test_an_unreachable_host_is_an_error(capsys):
    host = f"http://127.0.0.1:{free_port()}"
    assert _schedule(host, "--interval", "1d") == 1
    err = capsys.readouterr().err
    assert f"could not create the recurring run on {host}" in err and "Connection refused" in err


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ([], "give exactly one of --cron or --interval"),
        (["--cron", "0 3 * * *", "--interval", "1d"], "give exactly one of --cron or --interval"),
        (["--cron", "0 3 * * *"], "KFP takes 6 fields, seconds first (e.g. '0 0 3 * * *' = 03:00 every day); for"),
        (["--interval", "6 hours"], "--interval '6 hours': expected whole seconds or a duration"),
        (["--interval", "0"], "expected whole seconds"),
        (["--interval", "1d", "--days", "0"], "--days must be positive"),
        (["--interval", "1d", "--threshold", "rmse=3"], "threshold on 'rmse' is a regression metric"),
    ],
)
def test_bad_schedules_are_refused_before_anything_is_sent(kfp_api, capsys, extra, fragment):
    assert _schedule(kfp_api.url, *extra) == 1
    assert fragment in capsys.readouterr().err
    assert not kfp_api.requests


def test_sources_a_cluster_cannot_read_are_refused(kfp_api, capsys, tmp_path):
    base = ["schedule", "--host", kfp_api.url, "--label", "y", "--interval", "1d"]
    assert cli([*base, "--registry", str(tmp_path), "--source", "traffic"]) == 1
    assert "needs --registry s3://BUCKET" in capsys.readouterr().err
    assert cli([*base, "--registry", "s3://b", "--source", str(tmp_path / "d.csv")]) == 1
    assert "cannot read the local file" in capsys.readouterr().err
    assert cli([*base, "--registry", "s3://b", "--source", f"traffic://{tmp_path}#m?days=1"]) == 1
    assert "read captured traffic from an s3:// registry" in capsys.readouterr().err
    assert not kfp_api.requests
