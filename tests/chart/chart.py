#!/usr/bin/env python3
"""Lints and renders the Helm chart with the real Helm library (helm-python-sdk) and validates
every rendered object against Kubernetes' own schemas (kubernetes-validate, strict).

Called by tests/chart_*.rs (cargo test is the runner). Reads one JSON request on stdin:
  {"chart": DIR, "release": NAME, "namespace": NS, "kubernetes": "1.34",
   "lint": true, "cases": [{"values": {...}}, ...]}
and prints one JSON answer:
  {"lint": {...} | null, "crds": [problem, ...],
   "cases": [{"error": str | null, "objects": [obj, ...], "notes": str,
              "problems": [str, ...], "unvalidated": [kind/name, ...]}]}
A case whose values Helm rejects (schema or a template's `fail`) has `error` set.
"""

import json
import sys

import helm_python as helm
import kubernetes_validate
import yaml


def validate(obj, version):
    """Problems of one object, or None when kubernetes-validate has no schema for its kind."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
        return []
    except kubernetes_validate.SchemaNotFoundError:
        return None
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.path)
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        return [f"{name}: {where}: {e.message}"]


def render_case(chart, request, values):
    answer = {"error": None, "objects": [], "notes": "", "problems": [], "unvalidated": []}
    try:
        manifests = chart.render(
            values,
            name=request["release"],
            namespace=request["namespace"],
            is_install=True,
        )
    except helm.HelmError as e:
        answer["error"] = str(e)
        return answer
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            answer["notes"] = text
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            answer["objects"].append(doc)
            problems = validate(doc, request["kubernetes"])
            if problems is None:
                answer["unvalidated"].append(f"{doc['kind']}/{doc['metadata']['name']}")
            else:
                answer["problems"].extend(f"{path}: {p}" for p in problems)
    return answer


def main():
    request = json.load(sys.stdin)
    chart_dir = request["chart"]
    version = request["kubernetes"]
    out = {"lint": None, "crds": [], "cases": []}
    if request.get("lint"):
        out["lint"] = helm.lint(chart_dir, strict=True, kube_version=f"v{version}.0")
    with helm.Chart.load(chart_dir) as chart:
        for crd in chart.crds:
            for doc in yaml.safe_load_all(crd["data"]):
                if doc:
                    problems = validate(doc, version)
                    if problems is None:
                        out["crds"].append(f"{crd['filename']}: no schema for {doc.get('kind')}")
                    else:
                        out["crds"].extend(f"{crd['filename']}: {p}" for p in problems)
        for case in request.get("cases", []):
            out["cases"].append(render_case(chart, request, case.get("values") or {}))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
