#!/usr/bin/env python3
"""kubernetes-validate has no schema for the Prometheus operator's ServiceMonitor (a CRD): check the fields
the chart renders against the CRD's shape (monitoring.coreos.com/v1) and that it selects the chart's Service
and names a port the Service has."""
import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
services = [d for d in docs if d["kind"] == "Service"]
for sm in (d for d in docs if d["kind"] == "ServiceMonitor"):
    assert sm["apiVersion"] == "monitoring.coreos.com/v1", sm["apiVersion"]
    spec = sm["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}, spec.keys()
    labels = spec["selector"]["matchLabels"]
    matched = [s for s in services if all(s["metadata"]["labels"].get(k) == v for k, v in labels.items())]
    assert matched, "the ServiceMonitor selects no Service"
    for ep in spec["endpoints"]:
        assert set(ep) <= {"port", "path", "interval", "scheme", "scrapeTimeout"}, ep.keys()
        assert any(p["name"] == ep["port"] for s in matched for p in s["spec"]["ports"]), ep["port"]
