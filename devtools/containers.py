"""Run the pods of rendered manifests as containers on a Docker daemon, the way a kubelet would start them.

Test tooling (the ``container`` test tier), not part of the runtime. Every setting comes from the rendered manifest,
never retyped: the image, ``command``/``args`` (with ``$(VAR)`` expansion), ``env``/``envFrom`` (Secrets and
ConfigMaps given to the runner), the user and group, ``runAsNonRoot`` (checked against the image's USER as the
kubelet checks it), a read-only root filesystem, dropped/added capabilities, ``allowPrivilegeEscalation: false``
(no-new-privileges), memory and CPU limits, and the pod's volumes (emptyDir as a fresh 0777 directory, as the
kubelet makes it; Secret and ConfigMap volumes as files). Init containers run to completion, in order; then every
container starts and its readiness (else startup) probe is polled until it answers, or the container exits, or the
deadline passes: a ``ContainerFailed`` then names the pod, container, image, the reason and the log's tail.

What a kubelet does that this does not: a network namespace per pod. Containers share the host's network (the
project's daemon has no bridge), so a cluster Service name in an env value or argument is rewritten to the loopback
address of the pod that backs it (``ServiceMap``, derived from the rendered Services). An InferenceService becomes
the pod KServe's pod mutator makes of it (``kserve_predictor_pod``).
"""

import json
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.types import Mount

from mlcycle.errors import MlcycleError
from mlcycle.process import wait_until

LABEL = "io.mlcycle.container-test"
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
# KServe v0.20.0 (pkg/constants, storage_initializer_injector.go): the init container and the model volume.
KSERVE_CONTAINER = "kserve-container"
STORAGE_INITIALIZER = "storage-initializer"
MODEL_MOUNT = "/mnt/models"
MODEL_VOLUME = "kserve-provision-location"
# The image KServe's inferenceservice-config names for the storage initializer, at the pinned KServe release
# (`make images` builds the project's equivalent under this name).
STORAGE_INITIALIZER_IMAGE = "kserve/storage-initializer:v0.20.0"
MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")
READ_ONLY = re.compile(r"Read-only file system|No usable temporary directory|Permission denied: '([^']+)'")


class ContainerFailed(MlcycleError):
    """A container exited, failed its probe or was refused before it started; the message says which and why."""

    def __init__(self, pod: str, container: str, image: str, reason: str, logs: str = ""):
        self.pod, self.container, self.image, self.reason, self.logs = pod, container, image, reason, logs
        tail = "\n".join(logs.rstrip().splitlines()[-25:])
        super().__init__(f"{pod}: container {container!r} (image {image}): {reason}" + (f"\n{tail}" if tail else ""))

    @classmethod
    def of(cls, pod: "Pod", container: dict, reason: str, logs: str = "") -> "ContainerFailed":
        return cls(pod.source, container["name"], container["image"], reason, logs)


def diagnose(logs: str) -> str | None:
    """The cause a container's log names, in words: a module its image lacks, a write its filesystem refuses."""
    if m := MISSING_MODULE.search(logs):
        return f"the image lacks the module {m.group(1)!r} that the entrypoint imports"
    if m := READ_ONLY.search(logs):
        return f"it writes where its filesystem is read-only ({m.group(0)})"
    return None


@dataclass
class Pod:
    source: str  # "Deployment/fraud-detector-drift"
    name: str
    spec: dict
    namespace: str = "mlcycle"
    job: bool = False  # containers run to completion instead of serving


def pods(docs: Iterable[dict], storage_initializer: str = STORAGE_INITIALIZER_IMAGE) -> list[Pod]:
    """The pods the workloads among ``docs`` create (one replica each); InferenceServices as KServe mutates them."""
    docs = [d for d in docs if d]
    found = []
    for d in docs:
        kind, meta = d.get("kind"), d.get("metadata", {})
        ns = meta.get("namespace", "default")
        if kind in POD_KINDS:
            found.append(Pod(f"{kind}/{meta['name']}", meta["name"], d["spec"]["template"]["spec"], ns, kind == "Job"))
        elif kind == "InferenceService":
            found.append(kserve_predictor_pod(d, docs, storage_initializer))
    return found


def kserve_predictor_pod(isvc: dict, docs: list[dict], storage_initializer: str) -> Pod:
    """The predictor pod of a Standard-mode InferenceService with a custom container, as KServe v0.20.0 builds it:
    the predictor's pod-level fields and containers; ``STORAGE_URI`` on kserve-container rewritten to /mnt/models
    and the model volume (emptyDir) mounted there read-only; the storage-initializer init container (args
    ``[STORAGE_URI, /mnt/models]``) with the S3 environment KServe's credential builder derives from the Secret
    attached to the predictor's ServiceAccount (``s3_env_from_secret``)."""
    meta, predictor = isvc["metadata"], json.loads(json.dumps(isvc["spec"]["predictor"]))  # never alter the docs
    ns = meta.get("namespace", "default")
    containers = predictor.get("containers", [])
    main = next((c for c in containers if c["name"] == KSERVE_CONTAINER), None)
    if main is None:
        raise ValueError(f"InferenceService/{meta['name']}: no container named {KSERVE_CONTAINER}")
    spec = {k: v for k, v in predictor.items() if k not in _PREDICTOR_ONLY}
    spec["containers"] = containers
    spec.setdefault("automountServiceAccountToken", False)
    uri = next((e.get("value") for e in main.get("env", []) if e["name"] == "STORAGE_URI"), None)
    if uri:
        for e in main["env"]:
            if e["name"] == "STORAGE_URI":
                e["value"] = MODEL_MOUNT
        main.setdefault("volumeMounts", []).append({"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True})
        spec.setdefault("volumes", []).append({"name": MODEL_VOLUME, "emptyDir": {}})
        spec["initContainers"] = [
            {
                "name": STORAGE_INITIALIZER,
                "image": storage_initializer,
                "args": [uri, MODEL_MOUNT],
                "env": s3_env_from_secret(_service_account_secret(predictor, docs, ns)),
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT}],
            }
        ] + spec.get("initContainers", [])
    return Pod(f"InferenceService/{meta['name']}", f"{meta['name']}-predictor", spec, ns)


# PredictorSpec fields that are not PodSpec fields
_PREDICTOR_ONLY = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling", "containerConcurrency",
    "timeout", "canaryTrafficPercent", "logger", "batcher", "labels", "annotations", "deploymentStrategy", "name",
    "model", "sklearn", "xgboost", "workerSpec", "storageUri", "storage",
}  # fmt: skip


def _service_account_secret(predictor: dict, docs: list[dict], ns: str) -> str | None:
    sa_name = predictor.get("serviceAccountName")
    for d in docs:
        if d.get("kind") == "ServiceAccount" and d["metadata"]["name"] == sa_name:
            names = [s["name"] for s in d.get("secrets", [])]
            return names[0] if names else None
    return None


# KServe v0.20.0 pkg/credentials/s3: Secret annotation -> the variable the storage initializer reads
S3_ANNOTATIONS = {
    "serving.kserve.io/s3-usehttps": "S3_USE_HTTPS",
    "serving.kserve.io/s3-verifyssl": "S3_VERIFY_SSL",
    "serving.kserve.io/s3-region": "AWS_DEFAULT_REGION",
    "serving.kserve.io/s3-useanoncredential": "awsAnonymousCredential",
    "serving.kserve.io/s3-cabundle": "AWS_CA_BUNDLE",
}


def s3_env_from_secret(secret: str | None) -> list[dict]:
    """The env KServe's S3 credential builder gives the storage initializer for ``secret``: the keys as secretKeyRefs,
    and a marker entry ``$annotations`` that ``PodRunner`` resolves from the Secret it holds (endpoint, TLS, region:
    ``S3_ANNOTATIONS``)."""
    if secret is None:
        return []
    env = [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": k}}}
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    return env + [{"name": "$annotations", "value": secret}]


@dataclass
class Secret:
    data: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)


class ServiceMap:
    """Cluster Service addresses -> loopback addresses, from the rendered Services: ``<svc>.<ns>.svc.cluster.local``
    with its port (or without: port 80) becomes ``127.0.0.1:<targetPort>`` (the backing pod shares the host's network);
    ``extra`` adds or overrides addresses (e.g. the in-cluster MinIO -> the test's MinIO)."""

    def __init__(self, docs: Iterable[dict], extra: dict[str, str] | None = None):
        self.map: dict[str, str] = {}
        for d in docs:
            if not d or d.get("kind") != "Service":
                continue
            name, ns = d["metadata"]["name"], d["metadata"].get("namespace", "default")
            for p in d["spec"].get("ports", []):
                target = p.get("targetPort", p["port"])
                if isinstance(target, int):
                    host = f"{name}.{ns}.svc.cluster.local"
                    self.map[f"{host}:{p['port']}"] = f"127.0.0.1:{target}"
                    if p["port"] == 80:
                        self.map[host] = f"127.0.0.1:{target}"
        self.map.update(extra or {})
        self._pattern = re.compile("|".join(re.escape(k) for k in sorted(self.map, key=len, reverse=True)) or "(?!)")

    def rewrite(self, text: str) -> str:
        return self._pattern.sub(lambda m: self.map[m.group(0)], text)


def parse_quantity(q: str | int | float) -> float:
    """A Kubernetes quantity (``512Mi``, ``1Gi``, ``200m``, ``2``) as a number (bytes, or cores)."""
    s = str(q)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    for suffix, factor in units.items():
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * factor
    return float(s)


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in command, args and env values (``$$(VAR)`` stays literal)."""
    return re.sub(
        r"\$\$\(|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$(" if m.group(1) is None else env.get(m.group(1), m.group(0)),
        text,
    )


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class RunningPod:
    pod: Pod
    containers: dict  # name -> docker Container
    root: Path  # the pod's volumes

    def logs(self, name: str) -> str:
        try:
            return self.containers[name].logs().decode(errors="replace")
        except docker.errors.NotFound:
            return ""

    def stop(self, grace_s: int = 10) -> dict[str, int]:
        """SIGTERM, then SIGKILL after ``grace_s``, as a pod deletion does; returns each container's exit code."""
        codes = {}
        for name, c in self.containers.items():
            try:
                c.stop(timeout=grace_s)
                codes[name] = c.wait(timeout=grace_s + 5)["StatusCode"]
            except docker.errors.NotFound:
                continue
            except Exception:  # a timeout or an API error: still remove it, and the others
                pass
            try:
                c.remove(force=True)
            except docker.errors.APIError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
        return codes

    def __enter__(self) -> "RunningPod":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class PodRunner:
    """Starts pods on the daemon of ``client``. ``secrets``/``configmaps``: name -> ``Secret`` / {key: value}, what
    the cluster would hold. ``replace``: literal text replaced in args and env values before anything else (e.g. the
    VERSION placeholder a rollout fills). Containers carry the label ``io.mlcycle.container-test``; ``cleanup()``
    removes any left by a crashed run."""

    def __init__(
        self,
        client: "docker.DockerClient",
        workdir: Path,
        services: ServiceMap,
        secrets: dict[str, Secret] | None = None,
        configmaps: dict[str, dict[str, str]] | None = None,
        replace: dict[str, str] | None = None,
    ):
        self.client, self.workdir, self.services = client, Path(workdir), services
        self.secrets, self.configmaps, self.replace = secrets or {}, configmaps or {}, replace or {}
        self.workdir.mkdir(parents=True, exist_ok=True)

    def cleanup(self) -> int:
        """Remove the containers a previous (crashed) run left; returns how many."""
        left = self.client.containers.list(all=True, filters={"label": LABEL})
        for c in left:
            c.remove(force=True)
        return len(left)

    # -- translation ---------------------------------------------------------------------------------------------
    def _text(self, text: str, env: dict[str, str]) -> str:
        for old, new in self.replace.items():
            text = text.replace(old, new)
        return self.services.rewrite(_expand(text, env))

    def _secret(self, pod: Pod, name: str) -> Secret:
        if name not in self.secrets:
            raise ContainerFailed(
                pod.source, "-", "-", f'secret "{name}" not found (the kubelet would not start the pod)'
            )
        return self.secrets[name]

    def _configmap(self, pod: Pod, name: str) -> dict[str, str]:
        if name not in self.configmaps:
            raise ContainerFailed(
                pod.source, "-", "-", f'configmap "{name}" not found (the kubelet would not start the pod)'
            )
        return self.configmaps[name]

    def _env(self, pod: Pod, container: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for src in container.get("envFrom", []):
            prefix = src.get("prefix", "")
            if "secretRef" in src:
                ref = src["secretRef"]
                if ref["name"] in self.secrets or not ref.get("optional"):
                    env.update({prefix + k: v for k, v in self._secret(pod, ref["name"]).data.items()})
            elif "configMapRef" in src:
                ref = src["configMapRef"]
                if ref["name"] in self.configmaps or not ref.get("optional"):
                    env.update({prefix + k: v for k, v in self._configmap(pod, ref["name"]).items()})
        for e in container.get("env", []):
            name = e["name"]
            if name == "$annotations":  # KServe's credential builder, from the Secret's annotations
                secret = self._secret(pod, e["value"])
                for annotation, var in S3_ANNOTATIONS.items():
                    if annotation in secret.annotations:
                        env[var] = secret.annotations[annotation]
                endpoint = secret.annotations.get("serving.kserve.io/s3-endpoint")
                if endpoint:
                    scheme = "http" if secret.annotations.get("serving.kserve.io/s3-usehttps") == "0" else "https"
                    env["S3_ENDPOINT"] = self.services.rewrite(endpoint)
                    env["AWS_ENDPOINT_URL"] = self._text(f"{scheme}://{endpoint}", env)
                continue
            if "value" in e:
                env[name] = self._text(str(e["value"]), env)
            elif "valueFrom" in e:
                ref = e["valueFrom"]
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    if r["name"] not in self.secrets and r.get("optional"):
                        continue
                    data = self._secret(pod, r["name"]).data
                    if r["key"] not in data:
                        if r.get("optional"):
                            continue
                        raise ContainerFailed.of(pod, container, f"secret {r['name']} has no key {r['key']}")
                    env[name] = data[r["key"]]
                elif "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    if r["name"] not in self.configmaps and r.get("optional"):
                        continue
                    data = self._configmap(pod, r["name"])
                    if r["key"] not in data and not r.get("optional"):
                        raise ContainerFailed.of(pod, container, f"configmap {r['name']} has no key {r['key']}")
                    if r["key"] in data:
                        env[name] = data[r["key"]]
                elif "fieldRef" in ref:
                    path = ref["fieldRef"]["fieldPath"]
                    fields = {
                        "metadata.namespace": pod.namespace,
                        "metadata.name": pod.name,
                        "status.podIP": "127.0.0.1",
                        "status.hostIP": "127.0.0.1",
                        "spec.nodeName": "local",
                        "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
                    }
                    if path not in fields:
                        raise ContainerFailed.of(pod, container, f"fieldRef {path} not supported by the runner")
                    env[name] = fields[path]
                else:
                    raise ContainerFailed.of(
                        pod, container, f"env {name}: valueFrom {sorted(ref)} not supported by the runner"
                    )
        return env

    def _security(self, pod: Pod, container: dict, image) -> dict:
        psc, csc = pod.spec.get("securityContext", {}), container.get("securityContext", {})
        # seccompProfile RuntimeDefault is what Docker applies by default
        merged = {k: csc.get(k, psc.get(k)) for k in ("runAsUser", "runAsGroup", "runAsNonRoot")}
        kw: dict = {}
        image_user = (image.attrs["Config"].get("User") or "0").split(":")[0]
        uid = merged["runAsUser"]
        if merged["runAsNonRoot"]:
            # kubelet: "container has runAsNonRoot and image will run as root" / "image has non-numeric user"
            if uid is None and not image_user.isdigit():
                raise ContainerFailed.of(
                    pod, container, f"runAsNonRoot and the image's user {image_user!r} is not numeric"
                )
            if int(uid if uid is not None else image_user) == 0:
                raise ContainerFailed.of(pod, container, "runAsNonRoot and the container would run as root")
        if uid is not None:
            kw["user"] = f"{uid}:{merged['runAsGroup']}" if merged["runAsGroup"] is not None else str(uid)
        elif merged["runAsGroup"] is not None:
            kw["user"] = f"{image_user}:{merged['runAsGroup']}"
        if psc.get("fsGroup") is not None or psc.get("supplementalGroups"):
            kw["group_add"] = [
                str(g)
                for g in ([psc.get("fsGroup")] if psc.get("fsGroup") is not None else [])
                + psc.get("supplementalGroups", [])
            ]
        if csc.get("readOnlyRootFilesystem"):
            kw["read_only"] = True
        caps = csc.get("capabilities", {})
        if caps.get("drop"):
            kw["cap_drop"] = caps["drop"]
        if caps.get("add"):
            kw["cap_add"] = caps["add"]
        if csc.get("allowPrivilegeEscalation") is False:
            kw["security_opt"] = ["no-new-privileges"]
        if csc.get("privileged"):
            kw["privileged"] = True
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            kw["mem_limit"] = int(parse_quantity(limits["memory"]))
        if "cpu" in limits:
            kw["nano_cpus"] = int(parse_quantity(limits["cpu"]) * 1e9)
        return kw

    def _volumes(self, pod: Pod, root: Path) -> tuple[dict[str, Path], set[str]]:
        """Each volume as a host directory; the names of those the kubelet always mounts read-only."""
        dirs, read_only = {}, set()
        for v in pod.spec.get("volumes", []):
            d = root / v["name"]
            d.mkdir(parents=True)
            if "emptyDir" in v or "persistentVolumeClaim" in v:
                d.chmod(0o777)  # the kubelet makes an emptyDir world-writable
            elif "secret" in v:
                self._files(d, self._secret(pod, v["secret"]["secretName"]).data, v["secret"])
                read_only.add(v["name"])
            elif "configMap" in v:
                self._files(d, self._configmap(pod, v["configMap"]["name"]), v["configMap"])
                read_only.add(v["name"])
            else:
                raise ContainerFailed(
                    pod.source, "-", "-", f"volume {v['name']}: type not supported by the runner: {sorted(v)}"
                )
            dirs[v["name"]] = d
        return dirs, read_only

    @staticmethod
    def _files(d: Path, data: dict[str, str], source: dict) -> None:
        """A Secret's or ConfigMap's keys as files (``items`` picks and renames; modes as given, else 0644)."""
        items = source.get("items")
        chosen = {i["key"]: (i["path"], i.get("mode")) for i in items} if items else {k: (k, None) for k in data}
        for key, (rel, mode) in chosen.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(data[key])
            (d / rel).chmod(mode if mode is not None else source.get("defaultMode", 0o644))
        d.chmod(0o755)

    def _run_args(self, pod: Pod, container: dict, dirs: dict[str, Path], read_only: set[str]) -> dict:
        image_ref = container["image"]
        try:
            image = self.client.images.get(image_ref)
        except docker.errors.ImageNotFound:
            raise ContainerFailed.of(pod, container, "image not present on the node (ErrImageNeverPull)") from None
        env = self._env(pod, container)
        mounts = []
        for m in container.get("volumeMounts", []):
            src = dirs[m["name"]]
            if m.get("subPath"):
                src = src / m["subPath"]
                if not src.exists():  # the kubelet creates a missing subPath as a directory
                    src.mkdir(parents=True, mode=0o777)
            ro = bool(m.get("readOnly")) or m["name"] in read_only
            mounts.append(Mount(m["mountPath"], str(src), type="bind", read_only=ro))
        kw = {
            "image": image_ref,
            "environment": env,
            "mounts": mounts,
            "network_mode": "host",
            "labels": {LABEL: pod.source},
            "name": f"mlcycle-ct-{pod.name}-{container['name']}-{secrets.token_hex(3)}",
            **self._security(pod, container, image),
        }
        if container.get("command"):
            kw["entrypoint"] = [self._text(a, env) for a in container["command"]]
        if container.get("args") is not None:
            kw["command"] = [self._text(a, env) for a in container["args"]]
        elif container.get("command"):
            kw["command"] = []
        if container.get("workingDir"):
            kw["working_dir"] = container["workingDir"]
        return kw

    # -- running -------------------------------------------------------------------------------------------------
    def _fail(self, pod: Pod, container: dict, c, reason: str) -> ContainerFailed:
        logs = c.logs().decode(errors="replace") if c is not None else ""
        why = diagnose(logs)
        return ContainerFailed.of(pod, container, reason + (f": {why}" if why else ""), logs)

    def start(self, pod: Pod, timeout_s: float = 120.0) -> RunningPod:
        """Init containers to completion, then every container; returns once each is ready (its probe answers) or,
        for a Job, has exited 0. Raises ``ContainerFailed`` (after removing what it started) otherwise."""
        if not pod.job:  # the pods share the host's network: a port already taken would answer the probes instead
            for container in pod.spec["containers"]:
                for port in [p["containerPort"] for p in container.get("ports", [])]:
                    if _listening(port):
                        raise ContainerFailed.of(pod, container, f"port {port} is already in use on this host")
        root = self.workdir / f"{pod.name}-{secrets.token_hex(3)}"
        running = RunningPod(pod, {}, root)
        deadline = time.monotonic() + timeout_s
        try:
            dirs, read_only = self._volumes(pod, root)
            for container in pod.spec.get("initContainers", []):
                c = self._start(running, container, self._run_args(pod, container, dirs, read_only))
                code = self._wait_exit(pod, container, c, deadline)
                if code != 0:
                    raise self._fail(pod, container, c, f"init container exited {code}")
            started = []
            for container in pod.spec["containers"]:
                started.append(
                    (container, self._start(running, container, self._run_args(pod, container, dirs, read_only)))
                )
            deadline = time.monotonic() + timeout_s
            for container, c in started:
                if pod.job:
                    code = self._wait_exit(pod, container, c, deadline)
                    if code != 0:
                        raise self._fail(pod, container, c, f"exited {code}")
                else:
                    self._wait_ready(pod, container, c, deadline)
            return running
        except BaseException:
            running.stop(grace_s=1)
            raise

    def _start(self, running: RunningPod, container: dict, kw: dict):
        """Create, record, then start: a container that fails to start is still removed with the pod."""
        c = self.client.containers.create(**kw)
        running.containers[container["name"]] = c
        try:
            c.start()
        except docker.errors.APIError as e:
            raise ContainerFailed.of(running.pod, container, f"failed to start: {e.explanation or e}") from e
        return c

    def _wait_exit(self, pod: Pod, container: dict, c, deadline: float) -> int:
        import requests

        try:
            return c.wait(timeout=max(1.0, deadline - time.monotonic()))["StatusCode"]
        except requests.exceptions.RequestException as e:  # docker-py's read timeout (ReadTimeout or ConnectionError)
            raise self._fail(pod, container, c, "did not finish in time") from e

    def _wait_ready(self, pod: Pod, container: dict, c, deadline: float) -> None:
        """Until the readiness (else startup) probe answers 2xx; a container without a probe counts once running."""
        import urllib.request

        probe = container.get("readinessProbe") or container.get("startupProbe")
        url = None
        if probe is not None:
            get = probe.get("httpGet")
            if get is None:
                raise ContainerFailed.of(pod, container, f"probe type not supported: {sorted(probe)}")
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            port = get["port"] if isinstance(get["port"], int) else ports[get["port"]]
            url = f"http://127.0.0.1:{port}{get.get('path', '/')}"

        def ready() -> bool:
            c.reload()
            if c.status in ("exited", "dead"):
                code = c.attrs["State"]["ExitCode"]
                oom = " (OOMKilled)" if c.attrs["State"].get("OOMKilled") else ""
                raise self._fail(pod, container, c, f"exited {code}{oom} before it was ready")
            if url is None:
                return True
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return 200 <= r.status < 400
            except OSError:  # refused, reset, or an HTTP error status
                return False

        if not wait_until(ready, max(0.0, deadline - time.monotonic()), interval=0.25):
            raise self._fail(pod, container, c, f"not ready: GET {url} did not answer 2xx in time")
