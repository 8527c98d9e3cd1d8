#!/bin/sh
# check_layers.sh IO_HEADER_DIR CORE_FILE...: the core (decode, decide, encode,
# profiles, patch, JSON) stays pure. Fails, naming file:line, when a core source or
# header
#   1. includes an I/O header (any file in IO_HEADER_DIR, by any path), or reaches
#      outside include/core with a relative path ("../", "io/");
#   2. calls an I/O, environment, clock or thread function: the edges own those.
# The compiler already refuses an I/O header by name (the core's include path has
# no include/io); this also catches the paths and calls it cannot see. Comments
# are stripped first (gcc -fpreprocessed), so they may name anything.
# Run at every build (CMake target check_layers) and tested by
# tests/layers/test_check_layers.sh.
set -u
io_dir=$1
shift
status=0
io_names=$(cd "$io_dir" && ls -- *.h 2>/dev/null | sed 's/\./\\./g' | paste -sd'|' -)
calls='fopen|freopen|fdopen|fread|fwrite|fprintf|printf|vfprintf|puts|fputs|putchar|fflush|getline|open|openat|read|write|close|pread|pwrite|socket|connect|accept|bind|listen|send|recv|getenv|secure_getenv|setenv|unsetenv|clock_gettime|gettimeofday|time|sleep|usleep|nanosleep|stat|fstat|lstat|opendir|readdir|system|popen|fork|signal|sigaction|syslog|dlopen|pthread_[a-z_]+|curl_[a-z_]+|MHD_[a-z_]+|gnutls_[a-z_]+|yaml_parser_set_input_file'
for f in "$@"; do
	if ! text=$(gcc -fpreprocessed -dD -E -x c "$f" 2>/dev/null); then
		echo "check_layers: cannot read $f" >&2
		status=1
		continue
	fi
	bad=$(printf '%s\n' "$text" | awk -v f="$f" -v io="${io_names:-^$}" -v calls="$calls" '
		/^# [0-9]+ / { line = $2 - 1; next }
		{ line++ }
		/^[ \t]*#[ \t]*include/ {
			if (match($0, /["<][^">]*[">]/)) {
				path = substr($0, RSTART + 1, RLENGTH - 2)
				name = path; sub(/.*\//, "", name)
				if (name ~ ("^(" io ")$") || path ~ /(^|\/)\.\.\// || path ~ /(^|\/)io\//)
					printf "%s:%d: the core includes an I/O header: %s\n", f, line, path
			}
			next
		}
		{
			s = $0
			gsub(/"([^"\\]|\\.)*"/, "\"\"", s)
			if (match(s, "(^|[^A-Za-z0-9_.>])(" calls ")[ \t]*\\(")) {
				call = substr(s, RSTART, RLENGTH)
				sub(/^[^A-Za-z_]/, "", call)
				printf "%s:%d: the core calls %s) (I/O belongs at the edge)\n", f,
				       line, call
			}
		}')
	if [ -n "$bad" ]; then
		printf '%s\n' "$bad" >&2
		status=1
	fi
done
exit $status
