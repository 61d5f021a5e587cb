"""A local Kubernetes control plane for development and tests, without Docker (``make cluster-up``).

Real parts, from pinned Go module versions built by ``scripts/ensure-control-plane.sh`` (cached outside
the repo): etcd, kube-apiserver (RBAC, service-account tokens, locally generated serving certs),
kube-controller-manager, kube-scheduler, KWOK with one simulated node (pods are scheduled and reported
Running, but no container runs), the KServe v0.20.0 CRDs and controller manager in Standard mode with its
mutating and validating webhooks registered (URL client configs to the local manager, CA bundle from the
local PKI), and the Gateway API CRDs.

``python -m devtools.cluster up [--dir DIR]`` starts it and prints the kubeconfig path;
``python -m devtools.cluster down [--dir DIR]`` stops every process it started.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlcycle.process import free_port

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".mlcycle" / "cluster"
KSERVE_NAMESPACE = "kserve"
NODE = "kwok-node-0"
# What KServe's webhook paths are served for: the InferenceService defaulter and validator, and the pod mutator
# (storage initializer injection). Other KServe webhooks (LLM, local models, graphs) stay unregistered.
WEBHOOKS = {
    "inferenceservice.serving.kserve.io",
    "servingruntime.serving.kserve.io",
    "clusterservingruntime.serving.kserve.io",
}


class ClusterError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"cluster [{time.strftime('%H:%M:%S')}]: {message}", file=sys.stderr, flush=True)


def ensure_binaries() -> Path:
    """The cache directory with bin/ and src/ (builds on first use; progress on stderr)."""
    out = subprocess.run([str(ROOT / "scripts" / "ensure-control-plane.sh")], stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise ClusterError("building the control plane failed (see the messages above)")
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class Cluster:
    directory: Path = DEFAULT_DIR
    cache: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self):
        self.directory = Path(self.directory).resolve()

    # paths ------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.directory / "pki"

    def bin(self, name: str) -> str:
        return str(self.cache / "bin" / name)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    # lifecycle --------------------------------------------------------------------------
    def up(self, timeout: float = 120) -> "Cluster":
        start = time.monotonic()
        self.cache = self.cache or ensure_binaries()
        if self.directory.exists():
            self.down()
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        self.ports = {
            name: free_port()
            for name in (
                "etcd",
                "etcd_peer",
                "apiserver",
                "kcm",
                "scheduler",
                "kwok",
                "webhook",
                "kserve_metrics",
                "kserve_health",
            )
        }
        try:
            self._up(timeout)
        except BaseException:  # a half-started control plane must not outlive the failure (ports, CPU)
            log("start failed: stopping what was started")
            self.down()
            raise
        log(f"ready in {time.monotonic() - start:.1f}s: {self.server}; kubeconfig {self.kubeconfig}")
        return self

    def _up(self, timeout: float) -> None:
        self._pki()
        self._kubeconfigs()
        self._start_etcd()
        self._start_apiserver(timeout)
        self._start(
            "kube-controller-manager",
            [
                self.bin("kube-controller-manager"),
                f"--kubeconfig={self.directory / 'kcm.kubeconfig'}",
                f"--authentication-kubeconfig={self.directory / 'kcm.kubeconfig'}",
                f"--authorization-kubeconfig={self.directory / 'kcm.kubeconfig'}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['kcm']}",
                "--controllers=*,-node-ipam-controller,-node-lifecycle-controller",
                "--cluster-name=mlcycle",
            ],
        )
        self._start(
            "kube-scheduler",
            [
                self.bin("kube-scheduler"),
                f"--kubeconfig={self.directory / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={self.directory / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={self.directory / 'scheduler.kubeconfig'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
            ],
        )
        self._start_kwok()
        self._install_crds()
        self._start_kserve(timeout)

    def down(self) -> None:
        state = self.directory / "state.json"
        if self.procs:
            for name in reversed(list(self.procs)):
                _stop(self.procs[name])
        elif state.exists():  # another process started it (make cluster-up)
            for pid in reversed(list(json.loads(state.read_text()).get("pids", {}).values())):
                _kill(pid)
        self.procs.clear()
        if state.exists():
            state.unlink()

    def stop(self, name: str) -> None:
        """Stop one component (fault tests): it can be started again with ``restart``."""
        _stop(self.procs.pop(name))
        self._save_state()

    def restart_apiserver(self, timeout: float = 60) -> None:
        self.stop("kube-apiserver")
        self._start_apiserver(timeout)

    # kubectl ----------------------------------------------------------------------------
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess:
        out = subprocess.run(
            [self.bin("kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and out.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
        return out

    def apply(self, manifest: str, *extra: str) -> subprocess.CompletedProcess:
        return self.kubectl(
            "apply",
            "--server-side",
            "--field-manager=mlcycle-dev",
            "--force-conflicts",
            "-f",
            "-",
            *extra,
            input=manifest,
        )

    def get(self, *args: str, kubeconfig: Path | None = None) -> dict:
        """``kubectl get ARGS -o json`` as a dict."""
        return json.loads(self.kubectl("get", *args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def kustomize(self, path: Path | str) -> str:
        return self.kubectl("kustomize", str(path)).stdout

    # pieces -----------------------------------------------------------------------------
    def _pki(self) -> None:
        self.pki.mkdir()
        run = lambda *a: subprocess.run(["openssl", *a], cwd=self.pki, check=True, capture_output=True)  # noqa: E731
        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=mlcycle-local-ca",
        )
        run("genrsa", "-out", "sa.key", "2048")
        run("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        certs = {
            "apiserver": (
                "/CN=kube-apiserver",
                "serverAuth",
                "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.96.0.1",
            ),
            "webhook": ("/CN=kserve-webhook", "serverAuth", "DNS:localhost,IP:127.0.0.1"),
            "admin": ("/O=system:masters/CN=mlcycle-admin", "clientAuth", None),
            "kcm": ("/CN=system:kube-controller-manager", "clientAuth", None),
            "scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
            # KWOK plays every node's kubelet; the KServe manager has a wide ClusterRole on a real cluster too.
            "kwok": ("/O=system:masters/CN=kwok", "clientAuth", None),
            "kserve": ("/O=system:masters/CN=kserve-controller-manager", "clientAuth", None),
        }
        for name, (subject, usage, san) in certs.items():
            ext = self.pki / f"{name}.ext"
            ext.write_text(
                f"extendedKeyUsage={usage}\nkeyUsage=digitalSignature,keyEncipherment\n"
                + (f"subjectAltName={san}\n" if san else "")
            )
            run(
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                f"{name}.key",
                "-out",
                f"{name}.csr",
                "-subj",
                subject,
            )
            run(
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                f"{name}.crt",
                "-days",
                "30",
                "-extfile",
                ext.name,
            )

    def _kubeconfigs(self) -> None:
        ca = base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        for name, user in (
            ("kubeconfig", "admin"),
            ("kcm.kubeconfig", "kcm"),
            ("scheduler.kubeconfig", "scheduler"),
            ("kwok.kubeconfig", "kwok"),
            ("kserve.kubeconfig", "kserve"),
        ):
            data = {
                f"client-{kind}-data": base64.b64encode((self.pki / f"{user}.{ext}").read_bytes()).decode()
                for kind, ext in (("certificate", "crt"), ("key", "key"))
            }
            self.write_kubeconfig(self.directory / name, data, ca)

    def write_kubeconfig(self, path: Path, user: dict, ca: str | None = None, namespace: str = "default") -> Path:
        ca = ca or base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "mlcycle-local",
            "clusters": [
                {"name": "mlcycle-local", "cluster": {"server": self.server, "certificate-authority-data": ca}}
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [
                {
                    "name": "mlcycle-local",
                    "context": {"cluster": "mlcycle-local", "user": "user", "namespace": namespace},
                }
            ],
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def token_kubeconfig(self, namespace: str, service_account: str, path: Path) -> Path:
        """A kubeconfig holding a real, apiserver-signed token of ``service_account`` (TokenRequest)."""
        token = self.kubectl("-n", namespace, "create", "token", service_account, "--duration=2h").stdout.strip()
        return self.write_kubeconfig(path, {"token": token}, namespace=namespace)

    def _start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        out = open(self.directory / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
        )
        out.close()
        self.procs[name] = proc
        self._save_state()  # after every start, so `down` finds whatever a failed `up` left running
        return proc

    def _save_state(self) -> None:
        (self.directory / "state.json").write_text(
            json.dumps(
                {"ports": self.ports, "pids": {n: p.pid for n, p in self.procs.items()}, "cache": str(self.cache)},
                indent=2,
            )
        )

    def _start_etcd(self) -> None:
        url = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        self._start(
            "etcd",
            [
                self.bin("etcd"),
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(lambda: _http_ok(f"{url}/health"), 30, "etcd")

    def _start_apiserver(self, timeout: float) -> None:
        p = self.pki
        self._start(
            "kube-apiserver",
            [
                self.bin("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
            ],
        )
        self._wait(
            lambda: self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0, timeout, "kube-apiserver"
        )

    def _start_kwok(self) -> None:
        stages = self.kustomize(self.cache / "src" / "kwok" / "kustomize" / "stage" / "fast")
        config = self.directory / "kwok.yaml"
        config.write_text(stages)
        self._start(
            "kwok",
            [
                self.bin("kwok"),
                f"--kubeconfig={self.directory / 'kwok.kubeconfig'}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "-c",
                str(config),
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                "--cidr=10.0.0.1/24",
                "--node-ip=127.0.0.1",
            ],
        )
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": NODE,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            },
        }
        self.apply(yaml.safe_dump(node))

        def ready() -> bool:
            out = self.kubectl("get", "node", NODE, "-o", "json", check=False)
            if out.returncode != 0:
                return False
            obj = json.loads(out.stdout)
            for taint in obj["spec"].get("taints", []):  # node-lifecycle is off: nothing would remove it
                self.kubectl("taint", "node", NODE, f"{taint['key']}:{taint['effect']}-", check=False)
            return any(
                c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", [])
            )

        self._wait(ready, 60, "the KWOK node")

    def _install_crds(self) -> None:
        src = self.cache / "src"
        self.apply(self.kustomize(src / "kserve" / "config" / "crd" / "full"))
        self.apply(self.kustomize(src / "gateway-api" / "config" / "crd"))
        self._wait(
            lambda: self.kubectl("get", "inferenceservices.serving.kserve.io", "-A", check=False).returncode == 0
            and self.kubectl("get", "httproutes.gateway.networking.k8s.io", "-A", check=False).returncode == 0,
            60,
            "the CRDs",
        )

    def _start_kserve(self, timeout: float) -> None:
        src = self.cache / "src" / "kserve" / "config"
        self.apply(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KSERVE_NAMESPACE}}))
        [configmap] = [
            d for d in yaml.safe_load_all(self.kustomize(src / "configmap")) if d and d.get("kind") == "ConfigMap"
        ]
        configmap["metadata"]["namespace"] = KSERVE_NAMESPACE
        configmap["data"]["deploy"] = json.dumps({"defaultDeploymentMode": "Standard"})
        self.apply(yaml.safe_dump(configmap))
        # The manager reads its webhook serving certificate from $TMPDIR/k8s-webhook-server/serving-certs.
        tmp = self.directory / "kserve-tmp"
        certs = tmp / "k8s-webhook-server" / "serving-certs"
        certs.mkdir(parents=True)
        shutil.copyfile(self.pki / "webhook.crt", certs / "tls.crt")
        shutil.copyfile(self.pki / "webhook.key", certs / "tls.key")
        self._start(
            "kserve-manager",
            [
                self.bin("manager"),
                f"--webhook-port={self.ports['webhook']}",
                f"--metrics-addr=127.0.0.1:{self.ports['kserve_metrics']}",
                f"--health-probe-addr=127.0.0.1:{self.ports['kserve_health']}",
                "--leader-elect=false",
            ],
            env={
                "KUBECONFIG": str(self.directory / "kserve.kubeconfig"),
                "POD_NAMESPACE": KSERVE_NAMESPACE,
                "TMPDIR": str(tmp),
            },
        )
        self._wait(
            lambda: _http_ok(f"http://127.0.0.1:{self.ports['kserve_health']}/readyz"), timeout, "the KServe manager"
        )
        ca = base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        configs = []
        for doc in yaml.safe_load_all((src / "webhook" / "manifests.yaml").read_text()):
            if not doc or doc["metadata"]["name"] not in WEBHOOKS:
                continue
            for hook in doc["webhooks"]:
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{self.ports['webhook']}{path}", "caBundle": ca}
            configs.append(doc)
        self.apply(yaml.safe_dump_all(configs))
        log(f"KServe webhooks registered: {', '.join(sorted(WEBHOOKS))}")

    def _wait(self, ok, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise ClusterError(
                    f"{dead[0]} exited (code {self.procs[dead[0]].returncode}); log: {self.directory / (dead[0] + '.log')}"
                )
            try:
                if ok():
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.3)
        raise ClusterError(f"{what} not ready after {timeout:.0f}s; logs in {self.directory}")


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """Stop a child we started (and its process group): SIGTERM, then SIGKILL after 5 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def _kill(pid: int) -> None:
    """Stop a process group by pid (from state.json: not our child, so polling works)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("action", choices=["up", "down"])
    p.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"state directory (default {DEFAULT_DIR.relative_to(ROOT)})"
    )
    args = p.parse_args(argv)
    cluster = Cluster(args.dir)
    if args.action == "down":
        cluster.down()
        print(f"stopped the control plane in {args.dir}")
        return 0
    try:
        cluster.up()
    except (
        ClusterError,
        subprocess.SubprocessError,
        OSError,
        ValueError,
    ) as e:  # openssl, kubectl time-outs, bad sources
        print(f"cluster up: error: {type(e).__name__}: {e}", file=sys.stderr)
        cluster.down()
        return 1
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
