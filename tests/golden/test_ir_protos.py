"""The compiled IR parsed with the protos of the KFP backend line kind-up installs (2.17: kfp-pipeline-spec
2.17.x, the kfp-kubernetes executor config), rejecting unknown fields — what the backend's own parser does."""

import pytest
import yaml
from google.protobuf import json_format

from pipelines.compile import compile_all

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module")
def ir(tmp_path_factory):
    (path,) = compile_all(tmp_path_factory.mktemp("ir"))
    return list(yaml.safe_load_all(path.read_text()))


def test_pipeline_spec_parses_strictly(ir):
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = json_format.ParseDict(ir[0], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    assert spec.pipeline_info.name == "mlcycle-training"
    assert {"ingest", "validate-data", "train", "tune", "evaluate", "gate"} <= set(spec.root.dag.tasks)


def test_kubernetes_platform_spec_parses_strictly(ir):
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s
    from kfp.pipeline_spec import pipeline_spec_pb2

    platform = json_format.ParseDict(ir[1], pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
    executors = ir[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "kubernetes" in platform.platforms and executors
    for name, config in executors.items():
        parsed = json_format.ParseDict(config, k8s.KubernetesExecutorConfig(), ignore_unknown_fields=False)
        for secret in parsed.secret_as_env:
            assert secret.secret_name == "mlcycle-s3-pipeline" and secret.optional, (
                name
            )  # optional is honoured from backend 2.15


def test_an_unknown_field_is_rejected(ir):
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s

    config = dict(next(iter(ir[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values())))
    config["secretAsEnvironment"] = []
    with pytest.raises(json_format.ParseError, match="secretAsEnvironment"):
        json_format.ParseDict(config, k8s.KubernetesExecutorConfig(), ignore_unknown_fields=False)
