"""The KubeRay manifests under launch/cluster/kubernetes/ against the CRD schemas of a pinned KubeRay release
(tests/kuberay/, vendored from ray-project/kuberay v1.5.1), checked strictly: a field the CRD does not
define is an error, as ``kubectl apply --validate=strict`` makes it."""

from __future__ import annotations

import copy
import functools
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CRDS = Path(__file__).with_name("kuberay")
MANIFESTS = sorted((ROOT / "launch" / "cluster" / "kubernetes").glob("ray*.yaml"))


def strict(schema: dict) -> dict:
    """The CRD's openAPIV3Schema as JSON Schema that refuses unknown fields (except where Kubernetes keeps
    them: x-kubernetes-preserve-unknown-fields), and takes int-or-string values as either."""
    schema = copy.deepcopy(schema)

    def walk(node: dict) -> None:
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
            node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for child in node.get("properties", {}).values():
            walk(child)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key])
        for key in ("anyOf", "allOf", "oneOf"):
            for child in node.get(key, []):
                walk(child)

    walk(schema)
    schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: checked by the API server itself
    return schema


@functools.cache
def crd_schema(kind: str) -> dict:
    text = (CRDS / f"ray.io_{kind.lower()}s.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == kind
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return strict(version["schema"]["openAPIV3Schema"])


def errors(manifest: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(crd_schema(manifest["kind"]))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


def test_the_vendored_crds_say_where_they_come_from():
    for name in ("ray.io_rayjobs.yaml", "ray.io_rayclusters.yaml"):
        head = (CRDS / name).read_text().splitlines()[:3]
        assert "ray-project/kuberay, tag v1.5.1" in head[0] and "Apache License" in head[2]
    assert "Apache License" in (CRDS / "LICENSE").read_text()


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_every_manifest_is_valid_for_the_pinned_kuberay(path):
    manifest = yaml.safe_load(path.read_text())
    assert manifest["apiVersion"] == "ray.io/v1"
    assert errors(manifest) == []


def test_a_misspelled_field_is_caught():
    manifest = yaml.safe_load((ROOT / "launch/cluster/kubernetes/rayjob.yaml").read_text())
    manifest["spec"]["shutdownAfterJobFinish"] = manifest["spec"].pop("shutdownAfterJobFinishes")
    manifest["spec"]["rayClusterSpec"]["authOptions"]["mode"] = "tokens"
    found = errors(manifest)
    assert any("shutdownAfterJobFinish" in e for e in found) and any("tokens" in e for e in found), found


def cluster_specs():
    for path in MANIFESTS:
        manifest = yaml.safe_load(path.read_text())
        yield path.name, manifest, manifest["spec"].get("rayClusterSpec") or manifest["spec"]


@pytest.mark.parametrize(("name", "manifest", "cluster"), list(cluster_specs()), ids=[p.name for p in MANIFESTS])
def test_token_auth_gpu_workers_and_the_projects_image(name, manifest, cluster):
    assert cluster["authOptions"]["mode"] == "token"
    dockerfile = (ROOT / "launch/cluster/kubernetes/Dockerfile").read_text()
    assert "'.[cluster]'" in dockerfile and "wget" in dockerfile  # the project, job submission, KubeRay's probes
    assert "ARG BACKEND=tensorflow" in dockerfile and "torch) wheel='torch'" in dockerfile and "jax[cuda12]" in dockerfile
    pods = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    images = {c["image"] for pod in pods for c in pod["spec"]["containers"]}
    assert images == {"REGISTRY/hindsight-ray:0.1.0"}
    for group in cluster["workerGroupSpecs"]:
        for container in group["template"]["spec"]["containers"]:
            assert container["resources"]["limits"]["nvidia.com/gpu"] == container["resources"]["requests"][
                "nvidia.com/gpu"]


def test_the_rayjob_runs_a_valid_sweep_on_s3_and_tears_its_cluster_down():
    from hindsight_ray.config.schema import load_config

    manifest = yaml.safe_load((ROOT / "launch/cluster/kubernetes/rayjob.yaml").read_text())
    spec = manifest["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["submissionMode"] == "K8sJobMode"
    words = shlex.split(spec["entrypoint"])
    assert words[:2] == ["hindsight-ray", "sweep"]
    storage = words[words.index("--storage") + 1]
    assert storage.startswith("s3://")
    sets = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    config = load_config(None, [*sets, f"storage={storage}"])  # the keys and values are ones the sweep takes
    assert config.resources.gpus_per_trial == 0.5
