#!/bin/sh
# smoke-version.sh VERSION BROKEN: fails when VERSION is one of the words in BROKEN.
version=$1
for broken in $2; do
    if [ "$version" = "$broken" ]; then
        echo "smoke test of PetPortal $version: GET /health -> 500"
        exit 1
    fi
done
echo "smoke test of PetPortal $version: ok"
