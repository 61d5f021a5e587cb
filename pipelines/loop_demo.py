"""``make loop-demo``: the whole closed loop locally, no cluster, on the bundled demo data.

1. A production model is trained and served by the real KServe predictor; its payload log (request and
   response CloudEvents) goes to the capture service, which forwards requests to the drift detector.
2. Traffic arrives one request at a time; then it drifts — a new merchant mix and a new fraud pattern
   (contactless grocery/pharmacy fraud) — and the true labels come back late through ``/v1/feedback``.
3. The loop sees the drift and the falling online accuracy and retrains on the captured, labelled traffic
   (the real kfp.local pipeline, trigger recorded in the version's lineage).
4. The new version enters as the candidate: shadow (production requests captured after its training data ends,
   replayed, compared with production's answers and the late labels), then a canary with real Prometheus
   analysis, then promotion.
5. A second, deliberately worse candidate — retrained on stale data from before the drift — is stopped at
   the shadow stage and rolled back.
Each decision is printed once with its evidence; a summary of versions and aliases ends the run.
"""

import argparse
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from inference.devserve import Proc, start_capture, start_drift, start_predictor
from inference.traffic import post
from mlcycle import defaults
from mlcycle.data import DEMO_FEATURES, DEMO_LABEL, make_demo_dataset
from mlcycle.process import free_port
from mlcycle.registry import open_registry
from mlcycle.shadow import ShadowPolicy
from mlcycle.triggers import TriggerPolicy
from pipelines.canary_demo import rollout
from pipelines.direct import run_direct
from pipelines.loop import Loop, first_time, get_json
from pipelines.training import DEMO_THRESHOLDS

FEATURES = DEMO_FEATURES
TRIGGERS = TriggerPolicy(drift_windows=2, min_accuracy=0.95, min_samples=300, cooldown_s=3600, min_rows=2000)
# latency is not what this demo shows: a 2-core machine under load may stall a few replays past 250 ms
SHADOW = ShadowPolicy(
    min_requests=300, min_agreement=0.9, max_score_ks=0.25, max_p99_ms=1000, min_labels=200, max_accuracy_drop=0.0
)


def say(text: str) -> None:
    print(text, flush=True)


def send(url: str, model: str, rows: list[dict], first_id: int) -> list[str]:
    ids = []
    for i, row in enumerate(rows):
        rid = f"req-{first_id + i}"
        body = json.dumps({"instances": [row]}).encode()
        req = urllib.request.Request(
            f"{url}/v1/models/{model}:predict",
            data=body,
            method="POST",
            headers={"content-type": "application/json", "x-request-id": rid},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
        ids.append(rid)
    return ids


def feedback(url: str, labels: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Send late labels; returns those the capture service has not seen the request of yet (sent again later)."""
    body = json.dumps({"labels": [{"request_id": r, "label": y} for r, y in labels]}).encode()
    req = urllib.request.Request(
        f"{url}/v1/feedback", data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code != 422:
            raise
        answer = json.loads(e.read())
    unseen = {x["request_id"] for x in answer.get("refused", []) if x["reason"] in ("unknown_request_id", "pending")}
    return [(r, y) for r, y in labels if r in unseen]


def feedback_all(url: str, labels: list[tuple[str, int]], timeout: float = 60) -> None:
    """Send every label, again and again while the capture service has not seen their requests yet (the predictor
    logs them asynchronously, so a label can come back before its request is captured)."""
    deadline = time.monotonic() + timeout
    while labels := feedback(url, labels):
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(labels)} labels were refused for {timeout:g}s: their requests were never captured")
        time.sleep(0.5)


def wait_for_version(url: str, model: str, version: str, row: dict, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if post(f"{url}/v1/models/{model}:predict", {"instances": [row]}).get("model_version") == version:
            return True
        time.sleep(0.5)
    return False


def records(frame) -> list[dict]:
    return json.loads(frame[FEATURES].to_json(orient="records"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workdir", default=".mlcycle/loop-demo")
    p.add_argument("--model", default=defaults.MODEL_NAME)
    p.add_argument("--rows", type=int, default=3000, help="requests of drifted traffic")
    args = p.parse_args()
    started = time.perf_counter()
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    registry_uri = str(work / "registry")
    registry, model = open_registry(registry_uri), args.model
    logs = work / "logs"

    say("1. production model (bundled demo data, reference fraud pattern)")
    first = run_direct(
        registry,
        work / "initial",
        run_id="loop-initial",
        model_name=model,
        families=["logreg", "xgboost"],
        n_trials=0,
        thresholds=DEMO_THRESHOLDS,
        drift_backend="scipy",
        auto_promote=True,
    )
    say(f"   production {first.version}: roc_auc {first.metrics['roc_auc']:.3f}")

    procs: list[Proc] = []
    try:
        drift = start_drift(
            f"{registry_uri}#{model}@production",
            free_port(),
            logs / "drift.log",
            "--window_size",
            "200",
            "--consecutive",
            "2",
            "--backend",
            "scipy",
            "--state_dir",
            str(work / "drift-state"),
        )
        procs.append(drift)
        cap = start_capture(
            registry_uri,
            model,
            free_port(),
            work / "capture",
            logs / "capture.log",
            "--forward_url",
            f"{drift.url}/events",
            "--flush_rows",
            "200",
            "--flush_age_s",
            "2",
        )
        procs.append(cap)
        predictor = start_predictor(
            f"{registry_uri}#{model}@production",
            model,
            free_port(),
            free_port(),
            logs / "predictor.log",
            "--payload_log_url",
            f"{cap.url}/events",
            "--follow_s",
            "1",
            env={"MLCYCLE_PAYLOAD_LOG_MODE": "all"},  # responses too: the capture joins them to the requests
        )
        procs.append(predictor)
        loop = Loop(
            registry,
            registry_uri,
            model,
            drift.url,
            cap.url,
            work / "loop",
            TRIGGERS,
            SHADOW,
            train_params={
                "label": DEMO_LABEL,
                "families": ["logreg", "xgboost"],
                "n_trials": 0,
                "thresholds": DEMO_THRESHOLDS,
                "min_improvement": 0.0,
                "drift_backend": "scipy",
            },
            log=say,
        )

        say("2. traffic: 600 normal requests, then drifted traffic; labels arrive late, 200 requests behind")
        normal = make_demo_dataset(1000, seed=101).head(600)
        drifted = make_demo_dataset(max(args.rows, 1000), seed=202, drift=0.5, pattern=1.0).head(args.rows)
        sent: list[tuple[str, int]] = []
        frames = [(normal, "normal"), (drifted, "drifted")]
        decision, next_id, said = None, 0, set()

        def observe(where: str):
            d = loop.observe()
            if first_time(d, said):  # each decision once, with its evidence
                say(f"   {where}: {d.trigger}: {d.reason}")
            return d

        for frame, phase in frames:
            for start in range(0, len(frame), 100):
                chunk = frame.iloc[start : start + 100]
                ids = send(predictor.url, model, records(chunk), next_id)
                next_id += len(ids)
                sent += list(zip(ids, chunk[DEMO_LABEL].astype(int).tolist(), strict=True))
                if len(sent) > 200:
                    sent = feedback(cap.url, sent[:-200]) + sent[-200:]
                get_json(f"{drift.url}/flush", {})
                decision = observe(f"after {next_id} requests ({phase})")
                if decision.start:
                    break
            if decision and decision.start:
                break
        deadline = time.monotonic() + 120
        while not loop.retrains and time.monotonic() < deadline:  # the last labels come back
            sent = feedback(cap.url, sent)
            time.sleep(1)
            decision = observe(f"after the traffic, {len(sent)} labels still to come")
        if not loop.retrains:
            raise SystemExit("no retrain was triggered: the drifted traffic was not detected")

        run = loop.retrains[-1]
        say(
            f"3. retrain ({run.trigger}) on captured, labelled traffic: {run.outcome} {run.version or run.detail} "
            f"in {run.seconds:.0f}s (log {run.log})"
        )
        if run.outcome != "candidate":
            raise SystemExit(f"the retrain did not produce a candidate: {run.detail}")

        production = registry.resolve(model, "production")
        later = make_demo_dataset(1000, seed=505, drift=0.5, pattern=1.0).head(600)
        ids = send(predictor.url, model, records(later), next_id)
        next_id += len(ids)
        feedback_all(cap.url, list(zip(ids, later[DEMO_LABEL].astype(int).tolist(), strict=True)))
        say(
            f"4. shadow: {len(ids)} production requests received after the retrain's data (their labels back), "
            f"replayed against candidate {run.version}"
        )
        outcome = shadow_then_canary(loop, registry, registry_uri, model, production, run.version, logs, work)

        promoted = registry.resolve(model, "production")
        if not wait_for_version(predictor.url, model, promoted, records(drifted.head(1))[0]):
            raise SystemExit(f"the predictor did not switch to the new production {promoted}")
        say(f"   the predictor follows the alias: now answering with {promoted}")
        more = make_demo_dataset(1000, seed=404, drift=0.5, pattern=1.0).head(600)
        ids = send(predictor.url, model, records(more), next_id)
        next_id += len(ids)
        feedback_all(cap.url, list(zip(ids, more[DEMO_LABEL].astype(int).tolist(), strict=True)))
        say(f"   {len(ids)} more requests served by {promoted}, their labels returned")

        say("5. a worse candidate: retrained on stale data from before the drift")
        stale = run_direct(
            registry,
            work / "stale",
            run_id="loop-stale",
            seed=303,
            model_name=model,
            families=["logreg"],
            n_trials=0,
            thresholds=DEMO_THRESHOLDS,
            min_improvement=-0.05,
            drift_backend="scipy",
            auto_promote=False,
        )
        if not stale.passed:
            raise SystemExit("the stale candidate did not pass the offline gate: " + "; ".join(stale.reasons))
        say(
            f"   candidate {stale.version} passed the offline gate (roc_auc {stale.metrics['roc_auc']:.3f} on its own test set)"
        )
        bad = shadow_then_canary(
            loop, registry, registry_uri, model, registry.resolve(model, "production"), stale.version, logs, work
        )

        aliases, _ = registry.aliases(model)
        say(
            f"summary ({time.perf_counter() - started:.0f}s): versions {', '.join(registry.list_versions(model))}; "
            f"aliases {json.dumps(aliases)}; first candidate: {outcome}; stale candidate: {bad}"
        )
        return 0 if outcome == "promote" and bad != "promote" else 1
    finally:
        for proc in reversed(procs):
            proc.stop()


def shadow_then_canary(
    loop: Loop, registry, registry_uri: str, model: str, production: str, version: str, logs: Path, work: Path
) -> str:
    registry.set_alias(model, "candidate", version, why="retrained; entering shadow")
    decision = loop.shadow_candidate(version, logs)
    for line in decision.reasons:
        say(f"   {line}")
    if decision.evidence.labelled < SHADOW.min_labels:
        # without labels the gate falls back to agreement and score distance alone: not what this demo shows
        raise SystemExit(f"the shadow of {version} saw {decision.evidence.labelled} labels < {SHADOW.min_labels}")
    if not decision.passed:
        say(f"   SHADOW FAILED: {version} stopped; candidate alias cleared, production stays {production}")
        return "stopped at shadow"
    say(f"   canary: {version} against production {production}")
    kind = rollout(registry, registry_uri, model, production, version, logs, work / "prometheus")
    say(f"   canary outcome: {kind}; production is now {registry.resolve(model, 'production')}")
    return kind


if __name__ == "__main__":
    raise SystemExit(main())
