#!/bin/sh
# "Unit tests" of the example: the package to deploy exists and has its three components.
set -eu
package="packages/$1"
for component in web api config; do
  test -d "$package/$component" || { echo "missing $package/$component" >&2; exit 1; }
done
echo "package $1: web, api and config present"
