"""Where the rollout's evidence comes from.

``PrometheusProvider`` runs PromQL per canary revision over the last ``window`` (templates with
``{revision}``, ``{version}`` and ``{window}``; defaults for the local loop's load balancer metrics,
``KSERVE_QUERIES`` for Knative revisions, ``STANDARD_QUERIES`` for the predictor's own per-version metrics
in KServe's Standard mode). Any failure raises MetricsUnavailable: the policy
counts it and aborts after a bounded number in a row, never promoting on missing evidence.
"""

import json
import math
import urllib.parse
import urllib.request

from mlcycle.errors import MlcycleError


class MetricsUnavailable(MlcycleError):
    pass


LOCAL_QUERIES = {
    "requests": 'sum(increase(mlcycle_lb_requests_total{{revision="{revision}"}}[{window}]))',
    "error_rate": 'sum(rate(mlcycle_lb_requests_total{{revision="{revision}",code=~"5.."}}[{window}])) or vector(0)',
    "error_rate_denominator": 'sum(rate(mlcycle_lb_requests_total{{revision="{revision}"}}[{window}]))',
    "p99_latency_ms": '1000 * histogram_quantile(0.99, sum by (le) (rate(mlcycle_lb_request_seconds_bucket{{revision="{revision}"}}[{window}])))',
    "drift": "max(mlcycle_drift_detected) or vector(0)",
}
# Knative queue-proxy metrics of a KServe Serverless revision (scraped by Prometheus in the cluster).
KSERVE_QUERIES = {
    "requests": 'sum(increase(revision_app_request_count{{revision_name="{revision}"}}[{window}]))',
    "error_rate": 'sum(rate(revision_app_request_count{{revision_name="{revision}",response_code_class="5xx"}}[{window}])) or vector(0)',
    "error_rate_denominator": 'sum(rate(revision_app_request_count{{revision_name="{revision}"}}[{window}]))',
    "p99_latency_ms": 'histogram_quantile(0.99, sum by (le) (rate(revision_app_request_latencies_bucket{{revision_name="{revision}"}}[{window}])))',
    "drift": "max(mlcycle_drift_detected) or vector(0)",
}


# KServe Standard mode: the mlcycle predictor's own per-version metrics ({version} = the version id at the end
# of the canary's storage URI), scraped from the predictor pods (prometheus.io/* annotations on the InferenceService).
STANDARD_QUERIES = {
    "requests": 'sum(increase(mlcycle_requests_total{{version="{version}"}}[{window}]))',
    "error_rate": 'sum(rate(mlcycle_requests_total{{version="{version}",outcome="error"}}[{window}])) or vector(0)',
    "error_rate_denominator": 'sum(rate(mlcycle_requests_total{{version="{version}"}}[{window}]))',
    "p99_latency_ms": '1000 * histogram_quantile(0.99, sum by (le) (rate(mlcycle_request_seconds_bucket{{version="{version}"}}[{window}])))',
    "drift": "max(mlcycle_drift_detected) or vector(0)",
}


class PrometheusProvider:
    def __init__(self, url: str, queries: dict[str, str] | None = None, window: str = "30s", timeout: float = 5.0):
        self.url, self.queries, self.window, self.timeout = (
            url.rstrip("/"),
            dict(queries or LOCAL_QUERIES),
            window,
            timeout,
        )

    def query(self, promql: str) -> float | None:
        target = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(target, timeout=self.timeout) as r:
                body = json.loads(r.read())
        except (OSError, ValueError) as e:
            raise MetricsUnavailable(f"Prometheus at {self.url} failed: {e}") from e
        if body.get("status") != "success":
            raise MetricsUnavailable(f"Prometheus query failed: {body.get('error')}")
        result = body["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def observe(self, revision: str) -> tuple[int, dict[str, float]]:
        fill = {"revision": revision, "version": revision.rstrip("/").rsplit("/", 1)[-1], "window": self.window}
        requests = self.query(self.queries["requests"].format(**fill)) or 0.0
        metrics: dict[str, float] = {}
        errors = self.query(self.queries["error_rate"].format(**fill))
        total = self.query(self.queries["error_rate_denominator"].format(**fill))
        if total:
            metrics["error_rate"] = (errors or 0.0) / total
        p99 = self.query(self.queries["p99_latency_ms"].format(**fill))
        if p99 is not None:
            metrics["p99_latency_ms"] = p99
        drift = self.query(self.queries["drift"].format(**fill))
        if drift is not None:
            metrics["drift"] = drift
        return int(round(requests)), metrics
