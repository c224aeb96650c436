#!/bin/sh
# Health check of a PetPortal deployment; relflow runs it with the target as working folder.
set -eu
version=$(sed -n 's/^version = //p' api/server.conf)
if grep -q '^healthy = true' config/app.conf; then
  echo "health check: PetPortal $version is healthy"
else
  echo "health check: PetPortal $version reports unhealthy (config/app.conf)" >&2
  exit 1
fi
