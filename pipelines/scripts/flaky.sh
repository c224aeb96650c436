#!/bin/sh
# flaky.sh FAILURES EXIT_CODE: the first FAILURES attempts of this task run fail with
# EXIT_CODE, later ones succeed (relflow sets RELFLOW_ATTEMPT).
failures=$1
code=$2
if [ "${RELFLOW_ATTEMPT:-1}" -le "$failures" ]; then
    echo "publish attempt $RELFLOW_ATTEMPT: upstream busy, exiting $code"
    exit "$code"
fi
echo "publish attempt $RELFLOW_ATTEMPT: published"
