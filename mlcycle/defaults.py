"""Every default the project shares, in one place; the CLI, the pipeline, the steps and the servers read them here.

The registry has two defaults on purpose: a run on this machine writes a local directory, a run on a cluster
writes the object store (a pod cannot read the laptop's files). ``mlcycle submit`` refuses a local registry.
"""

MODEL_NAME = "fraud-detector"  # the bundled demo's model (and the InferenceService the manifests deploy)
SEED = 42  # every random choice of a run (split, sampling, model seeds) derives from one seed
DEMO_ROWS = 20_000  # rows of the bundled synthetic fraud dataset
LOCAL_REGISTRY = ".mlcycle/registry"
CLUSTER_REGISTRY = "s3://mlcycle-models"
REFERENCE_ROWS = 5_000  # rows of the training set a version keeps as its drift reference
# REST bodies the predictor and the drift detector read at most (413 beyond): one request of max_batch_rows rows
MAX_BODY_BYTES = 32 * 1024 * 1024
