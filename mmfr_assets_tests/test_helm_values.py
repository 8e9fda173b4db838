"""The run pod that deploy/helm-values.yaml gives a run, built offline by dagster-k8s itself.

Why: the Helm values are only read by a cluster, where a mistake (a secret written as a literal,
an env variable the run pod never gets, the code server's resources replacing the run pod's)
shows up as a failed or leaking run, days later. This test builds the Kubernetes Job the
`K8sRunLauncher` would create for a run of our code location, through the launcher's own
`launch_run` (container-context merge, `construct_dagster_k8s_job`), with the Kubernetes API
replaced by a recorder: no cluster and no network.

What is ours and not dagster-k8s': `run_launcher_config` and `code_location_container_context`
turn the values into what the chart's templates hand to the launcher (its instance config:
`helpers/instance/_run-launcher.tpl`) and to the code server (`DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT`:
`dagsterUserDeployments.k8sContainerContext` in the user-deployments subchart), for the keys our
values use. The launcher's config schema then validates the first; `K8sContainerContext`
validates the second when the run is launched.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmfr_assets.settings import shard_count

pytest.importorskip("dagster_k8s")  # the [test] extra

import kubernetes.client
from dagster import DagsterInstance
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.test_utils import instance_for_test
from dagster_k8s import K8sRunLauncher

VALUES = Path(__file__).resolve().parents[1] / "deploy" / "helm-values.yaml"

RELEASE, NAMESPACE = "mmfr", "mmfr"
FULLNAME = f"{RELEASE}-dagster"           # the chart's `dagster.fullname` for release "mmfr"
DAGSTER_HOME = "/opt/dagster/dagster_home"  # the chart's global.dagsterHome default
PG_SECRET = "dagster-postgresql-secret"     # the chart's global.postgresqlSecretName default

# Variables that hold a secret: never a literal `value` in a pod spec.
SECRET_VARIABLES = re.compile(
    r"(PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|^MMFR_LLM_CACHE$|^DAGSTER_PG_PASSWORD$)")
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


# -- what the chart does with our values (the keys we use) -------------------------------------

def _names(entries) -> list[str]:
    return [e["name"] for e in entries or [] if "name" in e]


def run_launcher_config(values: dict, kubeconfig: Path) -> dict:
    """The chart's `K8sRunLauncher` instance config (snake case), from `runLauncher.config`.

    Only `load_incluster_config`/`kubeconfig_file` differ from a cluster: outside one the
    launcher loads a kubeconfig (a file naming an address nobody connects to)."""
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    lv = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
        "job_namespace": lv.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": lv.get("imagePullPolicy", "IfNotPresent"),
        "service_account_name": FULLNAME,
        "dagster_home": DAGSTER_HOME,
        "instance_config_map": f"{FULLNAME}-instance",
        "postgres_password_secret": PG_SECRET,
    }
    if lv.get("envConfigMaps"):
        config["env_config_maps"] = _names(lv["envConfigMaps"])
    if lv.get("envSecrets"):
        config["env_secrets"] = _names(lv["envSecrets"])
    for key, snake in [("envVars", "env_vars"), ("volumeMounts", "volume_mounts"),
                       ("volumes", "volumes"), ("labels", "labels"), ("resources", "resources"),
                       ("schedulerName", "scheduler_name"), ("securityContext", "security_context")]:
        if lv.get(key):
            config[snake] = lv[key]
    if lv.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    run_k8s = lv.get("runK8sConfig") or {}
    if run_k8s:
        keys = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
                "podTemplateSpecMetadata": "pod_template_spec_metadata",
                "jobSpecConfig": "job_spec_config", "jobMetadata": "job_metadata"}
        unknown = set(run_k8s) - set(keys)
        assert not unknown, f"runK8sConfig keys the chart does not pass on: {unknown}"
        config["run_k8s_config"] = {keys[k]: v for k, v in run_k8s.items()}
    return config


def code_location(values: dict) -> dict:
    deployments = values["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1, "one code location: mmfr-assets"
    return deployments[0]


def code_location_image(deployment: dict) -> str:
    image = deployment["image"]
    return f"{image['repository']}:{image['tag']}"  # DAGSTER_CURRENT_IMAGE of the code server


def code_location_container_context(deployment: dict) -> dict | None:
    """What the code server reports as its container context (None: not passed to runs)."""
    if not (deployment.get("includeConfigInLaunchedRuns") or {"enabled": True})["enabled"]:
        return None
    k8s: dict[str, Any] = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [f"{FULLNAME}-{deployment['name']}-user-env",
                            *_names(deployment.get("envConfigMaps"))],
        "namespace": NAMESPACE,
        "service_account_name": f"{FULLNAME}-user-deployments",
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }
    if deployment.get("envSecrets"):
        k8s["env_secrets"] = _names(deployment["envSecrets"])
    for key, snake in [("volumeMounts", "volume_mounts"), ("volumes", "volumes"),
                       ("labels", "labels"), ("resources", "resources"),
                       ("schedulerName", "scheduler_name")]:
        if deployment.get(key):
            k8s[snake] = deployment[key]
    if isinstance(deployment.get("env"), list):  # a map goes to the user-env ConfigMap instead
        k8s["env"] = deployment["env"]
    return {"k8s": k8s}


# -- the launcher, with the Kubernetes API replaced by a recorder ------------------------------

class RecordingBatchApi:
    """Stands in for `kubernetes.client.BatchV1Api`: keeps the Jobs it is asked to create."""

    def __init__(self):
        self.created: list[tuple[str, kubernetes.client.V1Job]] = []

    def create_namespaced_job(self, body, namespace, **_kwargs):
        self.created.append((namespace, body))
        return body


OFFLINE_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "offline",
    "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "offline", "user": {}}],
    "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}],
}


def render_run_job(values: dict, tmp_path: Path) -> dict:
    """The run pod's Job (as the Kubernetes API would receive it) for one run of our location."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(OFFLINE_KUBECONFIG))
    processed = process_config(K8sRunLauncher.config_type(), run_launcher_config(values, kubeconfig))
    assert processed.success, processed.errors  # the launcher accepts what the chart writes
    batch = RecordingBatchApi()
    launcher = K8sRunLauncher(**processed.value, k8s_client_batch_api=batch)

    deployment = code_location(values)
    origin = JobPythonOrigin(
        "__ASSET_JOB",
        RepositoryPythonOrigin(
            executable_path="/usr/local/bin/python",
            code_pointer=ModuleCodePointer("mmfr_assets.definitions", "defs", working_directory=None),
            container_image=code_location_image(deployment),
            container_context=code_location_container_context(deployment),
        ),
    )
    with instance_for_test() as instance:
        launcher.register_instance(instance)
        run = DagsterRun(job_name="__ASSET_JOB", run_id="0f6c2a8e-1d3b-4c5e-9a7f-2b8d6e4c1a90",
                         job_code_origin=origin)
        instance.add_run(run)
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    assert len(batch.created) == 1
    namespace, job = batch.created[0]
    assert namespace == NAMESPACE
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def secret_leaks(container: dict) -> list[str]:
    """Every env entry of `container` that carries a secret as a literal value."""
    leaks = []
    for entry in container.get("env") or []:
        value = entry.get("value")
        if value is None:
            continue
        if SECRET_VARIABLES.search(entry["name"]) or URL_WITH_PASSWORD.search(str(value)):
            leaks.append(entry["name"])
    return leaks


# -- the tests ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


@pytest.fixture(scope="module")
def run_job(values, tmp_path_factory) -> dict:
    return render_run_job(values, tmp_path_factory.mktemp("k8s"))


def run_container(job: dict) -> dict:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env") or []}


def test_run_pod_uses_the_code_location_image_and_executes_the_run(values, run_job):
    container = run_container(run_job)
    assert container["image"] == code_location_image(code_location(values))
    # the code server's own interpreter (the image's) runs `dagster api execute_run <run>`
    assert container["args"][:5] == ["/usr/local/bin/python", "-m", "dagster", "api", "execute_run"]
    spec = run_job["spec"]
    # Kubernetes does not restart a dead run pod by itself: Dagster's run retries relaunch it
    # (a second Job), so a run is never executed twice at once.
    assert spec["backoffLimit"] == 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_run_pod_gets_the_pipeline_settings(values, run_job):
    env = env_of(run_container(run_job))
    literal = {e["name"]: e["value"] for e in code_location(values)["env"] if "value" in e}
    for name in ["MMFR_SOURCE", "MMFR_LAKE", "MMFR_LAKE_STORAGE_OPTIONS", "MMFR_SHARDS",
                 "MMFR_COT_TEACHER_BASE_URL"]:
        assert env[name].get("value") == literal[name], name
    assert literal["MMFR_LAKE"].startswith("s3://")
    # a count the code location accepts, the same in every run pod (a lake is written with one)
    assert shard_count({"MMFR_SHARDS": env["MMFR_SHARDS"]["value"]}) > 1
    assert env["DAGSTER_HOME"]["value"] == DAGSTER_HOME


def test_run_pod_reads_every_secret_from_kubernetes_secrets(run_job):
    container = run_container(run_job)
    env = env_of(container)
    refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items()
            if "secretKeyRef" in (e.get("valueFrom") or {})}
    assert refs["MMFR_LLM_CACHE"] == {"name": "mmfr-llm-cache", "key": "url"}
    assert refs["DAGSTER_PG_PASSWORD"] == {"name": PG_SECRET, "key": "postgresql-password"}
    assert refs["HF_TOKEN"]["optional"] is True
    secret_refs = [e["secretRef"]["name"] for e in container.get("envFrom") or [] if "secretRef" in e]
    assert "mmfr-lake-credentials" in secret_refs  # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    assert secret_leaks(container) == []


def test_a_literal_secret_in_the_values_is_caught(values, tmp_path):
    """The leak check is not vacuous: a cache URL with its password written into the values
    reaches the run pod as a literal, and is reported."""
    leaky = copy.deepcopy(values)
    env = code_location(leaky)["env"]
    env[:] = [e for e in env if e["name"] != "MMFR_LLM_CACHE"]
    env.append({"name": "MMFR_LLM_CACHE", "value": "postgresql://mmfr:hunter2@db:5432/cache"})
    env.append({"name": "MMFR_NOTES", "value": "https://user:pw@example.invalid/x"})
    assert secret_leaks(run_container(render_run_job(leaky, tmp_path))) == [
        "MMFR_LLM_CACHE", "MMFR_NOTES"]


def test_run_pod_resources_are_the_run_launchers(values, run_job, tmp_path):
    """The run launcher's resources reach the run pod. A code location's `resources` would
    replace them (the location's container context wins over the launcher's), which is why the
    values leave the location without any: checked here too."""
    wanted = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"][
        "resources"]
    resources = run_container(run_job)["resources"]
    assert resources["requests"] == {k: str(v) for k, v in wanted["requests"].items()}
    assert resources["limits"] == {k: str(v) for k, v in wanted["limits"].items()}

    sized = copy.deepcopy(values)
    code_location(sized)["resources"] = {"requests": {"cpu": "250m", "memory": "1Gi"}}
    replaced = run_container(render_run_job(sized, tmp_path))["resources"]
    assert replaced["requests"] == {"cpu": "250m", "memory": "1Gi"}
