#!/bin/sh
# rate-limited-api.sh LIMITED RETRY_AFTER STATUS: the first LIMITED attempts are answered
# with STATUS (and a Retry-After of RETRY_AFTER seconds), later ones with 200, printed the way
# `curl -i` shows a response.
limited=$1
retry_after=$2
status=$3
if [ "${RELFLOW_ATTEMPT:-1}" -le "$limited" ]; then
    case $status in
        429) reason="Too Many Requests" ;;
        503) reason="Service Unavailable" ;;
        *) reason="Error" ;;
    esac
    echo "HTTP/1.1 $status $reason"
    echo "Retry-After: $retry_after"
    exit 22
fi
echo "HTTP/1.1 200 OK"
echo "announced release $RELFLOW_RELEASE_ID"
