#!/bin/sh
# Smoke test: the deployed site answers with the version we meant to ship.
set -eu
target="../.relflow-demo/petportal"
grep -q "PetPortal $1" "$target/web/index.html" && echo "smoke: PetPortal $1 is serving"
