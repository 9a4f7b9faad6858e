# testlib.sh - sourced by the shell tests: say, check (which counts a
# failure in $fail; tests/run.sh counts the "ok"/"FAIL" lines), and
# ctrl_c_run, which presses Ctrl-C on a command as a terminal would.

say() { printf '%s\n' "$*"; }

check() { # description, command...
	d=$1
	shift
	if "$@"; then say "ok   $d"; else say "FAIL $d"; fail=1; fi
}

# ctrl_c_run OUT PATTERN DELAY COMMAND...: runs COMMAND in a session of its
# own with its output in OUT and, DELAY seconds after a line of OUT matches
# PATTERN (or after 30 s), sends SIGINT to its whole process group, as
# Ctrl-C does; returns COMMAND's exit status.  Needs setsid (util-linux).
ctrl_c_run() {
	cc_out=$1 cc_pat=$2 cc_delay=$3
	shift 3
	cc_pg=$(mktemp /tmp/l1ctrlc.XXXXXX)
	: >"$cc_out"
	(
		i=0
		while [ $i -lt 300 ] && ! grep -q "$cc_pat" "$cc_out" 2>/dev/null; do
			sleep 0.1
			i=$((i + 1))
		done
		sleep "$cc_delay"
		kill -INT -"$(cat "$cc_pg")"
	) &
	cc_killer=$!
	setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$cc_pg" "$@" >"$cc_out" 2>&1
	cc_rc=$?
	wait $cc_killer
	rm -f "$cc_pg"
	return $cc_rc
}
