#!/bin/sh
# run_fuzz.sh TARGET SEEDS REGRESSIONS WORKDIR SECONDS [DICT]
# Replays every saved regression input (each once, none may crash), then fuzzes for
# SECONDS starting from the checked-in seeds, with the corpus kept in WORKDIR (outside
# the source tree). A crash leaves its input in WORKDIR/crashes/: copy it into
# REGRESSIONS once fixed, so it is replayed forever.
set -u
target=$1 seeds=$2 regressions=$3 work=$4 seconds=$5 dict=${6:-}
mkdir -p "$work/corpus" "$work/crashes"
if [ -n "$(ls -A "$regressions" 2>/dev/null)" ]; then
	"$target" -runs=1 "$regressions"/* >"$work/regressions.log" 2>&1 || {
		cat "$work/regressions.log" >&2
		echo "run_fuzz: a regression input crashes $target" >&2
		exit 1
	}
fi
set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
	-print_final_stats=1 -artifact_prefix="$work/crashes/"
[ -n "$dict" ] && set -- "$@" -dict="$dict"
"$target" "$@" "$work/corpus" "$seeds" >"$work/fuzz.log" 2>&1
status=$?
tail -n 12 "$work/fuzz.log"
if [ "$status" -ne 0 ]; then
	echo "run_fuzz: $target failed (status $status); inputs in $work/crashes" >&2
	exit 1
fi
