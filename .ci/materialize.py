#!/usr/bin/env python3
"""Lays out what the chart would mount into the ocigate container, from a rendered manifest, under a folder,
so that `ocigate check-config <folder>/etc/ocigate/config/ocigate.yaml` checks the very config, policy and
files a pod would get.

  OCIGATE=path/to/ocigate materialize.py RENDERED.yaml FOLDER      prints the config file's path

ConfigMaps and Secrets the chart rendered are written as the pod would see them (`items` honoured).
Secrets it only references (existingSecret) get stand-ins by key: a self-signed certificate (and key) for
tls.crt/tls.key/ca.crt, an htpasswd line for htpasswd, a signing key from `ocigate token keygen` for *.pem,
a JWKS for *.json, and a word for anything else; a policy ConfigMap it only references gets an empty policy.
"""
import base64
import os
import subprocess
import sys

import yaml


def self_signed(folder, cert, key=None):
    key_path = os.path.join(folder, key or ".stand-in.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=stand-in", "-keyout", key_path, "-out", os.path.join(folder, cert)],
                   check=True, capture_output=True)
    if key is None:
        os.remove(key_path)


def stand_ins(folder, keys, ocigate):
    for k in keys:
        path = os.path.join(folder, k)
        if k in ("tls.crt", "tls.key"):
            if not os.path.exists(path):
                self_signed(folder, "tls.crt", "tls.key")
        elif k == "ca.crt":
            self_signed(folder, "ca.crt")
        elif k == "htpasswd":
            line = subprocess.run([ocigate, "passwd", "--cost", "4", "stand-in"], input=b"stand-in\n", check=True,
                                  capture_output=True).stdout
            open(path, "wb").write(line)
        elif k.endswith(".json"):  # a JWKS with one public key (RFC 7517's example key)
            open(path, "w").write('{"keys":[{"kty":"EC","crv":"P-256","use":"sig","kid":"stand-in",'
                                  '"x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",'
                                  '"y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}')
        elif k.endswith(".pem"):
            open(path, "wb").write(subprocess.run([ocigate, "token", "keygen"], check=True,
                                                  capture_output=True).stdout)
        else:
            open(path, "wb").write(b"stand-in\n")


def named_in(config_text, mount):
    """The files the config names under a mount (as `../<folder>/<file>`, relative to /etc/ocigate/config)."""
    folder = "../" + os.path.relpath(mount["mountPath"], "/etc/ocigate") + "/"
    return [l.split(folder, 1)[1].strip().strip('"') for l in config_text.splitlines() if folder in l]


def main():
    rendered, root = sys.argv[1], sys.argv[2]
    ocigate = os.environ.get("OCIGATE", "ocigate")
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    named = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 1, "one workload expected"
    spec = workloads[0]["spec"]["template"]["spec"]
    container = next(c for c in spec["containers"] if c["name"] == "ocigate")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    config_map = named[("ConfigMap", workloads[0]["metadata"]["name"] + "-config")]
    config_text = config_map["data"]["ocigate.yaml"]
    for m in container.get("volumeMounts", []):
        v = volumes.get(m["name"])
        if v is None or not ("configMap" in v or "secret" in v):
            continue  # the data volume, emptyDirs
        target = os.path.join(root, m["mountPath"].lstrip("/"))
        os.makedirs(target, exist_ok=True)
        if "configMap" in v:
            source = named.get(("ConfigMap", v["configMap"]["name"]))
            if source is None:
                if m["mountPath"] == "/etc/ocigate/policy":  # the user's own policy: an empty one stands in
                    open(os.path.join(target, "policy.yaml"), "w").write("grants: []\n")
                else:
                    items = v["configMap"].get("items")
                    stand_ins(target, [i["path"] for i in items] if items else named_in(config_text, m), ocigate)
                continue
            files = {k: s.encode() for k, s in (source.get("data") or {}).items()}
            items = v["configMap"].get("items")
        else:
            items = v["secret"].get("items")
            source = named.get(("Secret", v["secret"]["secretName"]))
            if source is None:
                if items:
                    keys = [i["path"] for i in items]
                elif m["mountPath"].endswith("/tls"):
                    keys = ["tls.crt", "tls.key"]
                else:  # the files the config names there (token keys, ...)
                    keys = named_in(config_text, m)
                stand_ins(target, keys, ocigate)
                continue
            files = {k: base64.b64decode(s) for k, s in (source.get("data") or {}).items()}
            files.update({k: s.encode() for k, s in (source.get("stringData") or {}).items()})
        if items:
            files = {i["path"]: files[i["key"]] for i in items if i["key"] in files}
        for k, content in files.items():
            with open(os.path.join(target, k), "wb") as f:
                f.write(content)
    print(os.path.join(root, "etc/ocigate/config/ocigate.yaml"))


main()
