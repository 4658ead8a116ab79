# t/lib/port.bash — a loopback port for a server a test or bench starts.
#
# Ports come from 10000 up to just below the kernel's ephemeral range
# (net.ipv4.ip_local_port_range, 32768.. by default). A port inside that
# range can at any moment be the local end of some client's connection
# (a psql, a curl): no probe sees it, and a server's bind then fails with
# "Address already in use" — the failure CI showed for unde-dev.
# Sourced by common.bash, pg.bash, moto.bash, httpd.bash and pgbouncer.bash;
# safe twice.

[ -n "${_UNDE_PORT_BASH:-}" ] && return 0
_UNDE_PORT_BASH=1

# unde_detach CMD… without t/lib/common.bash (a bench sources the server
# helpers alone): the server keeps the descriptors it inherits. Like
# common.bash's, it replaces the calling shell, and a shell function (pg.bash
# passes _pg_as_owner), which cannot be exec'd, runs and then exits it.
declare -F unde_detach >/dev/null || unde_detach() {
	if declare -F "$1" >/dev/null; then
		"$@"
		exit
	fi
	exec "$@"
}

# unde_port_candidate — a random port below the ephemeral range.
unde_port_candidate() {
	local lo=32768 _hi
	read -r lo _hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
	((lo > 11000)) || lo=32768
	echo $(( 10000 + ( ((RANDOM << 15) | RANDOM) % (lo - 10000) ) ))
}

# unde_port_taken PORT — true when something listens on 127.0.0.1:PORT.
unde_port_taken() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# unde_free_port — a candidate port nothing listens on (a server that binds
# it may still lose a race with another test: callers that can, retry).
unde_free_port() {
	local p _
	for _ in $(seq 50); do
		p=$(unde_port_candidate)
		unde_port_taken "$p" || { echo "$p"; return 0; }
	done
	return 1
}
