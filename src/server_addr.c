/*
 * server_addr: a listen address, [HOST]:PORT with HOST an IPv4 or IPv6 literal or
 * empty (every interface), into the socket address libmicrohttpd binds.
 */
#include <arpa/inet.h>
#include <string.h>

#include "config.h"
#include "server_internal.h"

int server_resolve(const char *address, struct bind_addr *out, struct diag *d)
{
	char host[64];
	struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;

	memset(out, 0, sizeof(*out));
	if (config_split_address(address, host, sizeof(host), &out->port) != 0)
		return diag_set(d, DIAG_EINVAL, "bad address '%s'", address);
	out->any = host[0] == '\0';
	if (out->any)
		return 0;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)out->port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)out->port);
		out->ipv6 = true;
		return 0;
	}
	return diag_set(d, DIAG_EINVAL, "'%s' is not an IP address", host);
}
