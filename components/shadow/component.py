"""The shadow lifecycle step: the candidate replays production's captured traffic before any canary traffic."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components.image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def shadow(
    registry_uri: str,
    model_name: str,
    version: str,
    hours: float,
    trigger: str,
    min_requests: int,
    min_agreement: float,
    max_accuracy_drop: float,
    evidence: Output[Artifact],
) -> bool:
    """Shadow the candidate on production's captured traffic; only a passing candidate reaches the canary.

    Mesh-free by replay: KServe has no traffic mirroring without a mesh, so the requests production answered in the
    last hours (captured to the registry's object store with production's logged answers) and their late labels are
    scored again by the candidate inside this step, one request at a time (timed: p99 at most
    ShadowPolicy.max_p99_ms). Production serves no extra load, and the candidate's answers
    never reach a client. Agreement, score distance, the candidate's per-request latency and errors, and (with enough
    labels) both models' balanced accuracy on the same rows decide (mlcycle.shadow). A failed shadow clears the
    candidate alias (production untouched); every outcome is the audit record "shadow".

    Args:
        registry_uri: s3://bucket (credentials from the environment) or a local directory.
        model_name: Registered model name.
        version: The candidate version (the register step's output).
        hours: Captured traffic of this many hours is replayed.
        trigger: Why the run started: with drift, accuracy or new_data, no captured traffic fails the shadow.
        min_requests: Fewer replayed requests fail (wait for more traffic).
        min_agreement: Share of requests both models decide alike (while labels are too few).
        max_accuracy_drop: Largest tolerated drop of online balanced accuracy against production.
        evidence: The decision, every reason and the evidence (JSON).

    Returns:
        Whether the candidate may go on to the canary.
    """
    import dataclasses
    import json
    from pathlib import Path

    from components.shadow.logic import shadow as run
    from mlcycle.registry import open_registry
    from mlcycle.shadow import ShadowPolicy

    policy = dataclasses.replace(
        ShadowPolicy(),
        min_requests=min_requests,
        min_agreement=min_agreement,
        max_accuracy_drop=max_accuracy_drop,
    )
    decision = run(open_registry(registry_uri), model_name, version, policy, hours, trigger)
    body = {"passed": decision.passed, "reasons": decision.reasons, **decision.evidence.as_dict()}
    Path(evidence.path).write_text(json.dumps(body, indent=2))
    evidence.metadata["passed"] = decision.passed
    print(("SHADOW PASSED" if decision.passed else "SHADOW FAILED") + "\n  " + "\n  ".join(decision.reasons))
    return decision.passed
