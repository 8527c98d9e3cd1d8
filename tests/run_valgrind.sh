#!/bin/sh
# run_valgrind.sh VALGRIND EXPECTED_STATUS COMMAND...: runs COMMAND under memcheck and
# fails on any memory error or leak (status 99) or an unexpected exit status.
valgrind=$1
expected=$2
shift 2
"$valgrind" --quiet --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all \
	--error-exitcode=99 "$@" >/dev/null
status=$?
if [ "$status" -ne "$expected" ]; then
	echo "run_valgrind: exit status $status, expected $expected (99 = memcheck error)" >&2
	exit 1
fi
