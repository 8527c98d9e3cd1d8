/*
 * server_route: the routes and the listeners the server answers on, each one list.
 * The server routes with them and the metrics module labels
 * piw_http_requests_total with their names, so a route is added in one line.
 */
#ifndef PIW_SERVER_ROUTE_H
#define PIW_SERVER_ROUTE_H

/* The request paths (ROUTE_OTHER: anything else, labelled "other"). */
#define SERVER_ROUTES(X)             \
	X(ROUTE_MUTATE, "/mutate")   \
	X(ROUTE_HEALTHZ, "/healthz") \
	X(ROUTE_READYZ, "/readyz")   \
	X(ROUTE_METRICS, "/metrics") \
	X(ROUTE_OTHER, "other")

/* The two listeners: the webhook's HTTPS one and the plain-HTTP metrics one. */
#define SERVER_LISTENERS(X)                \
	X(METRICS_LISTENER_HTTPS, "https") \
	X(METRICS_LISTENER_METRICS, "metrics")

#define SERVER_ROUTE_ID(id, name) id,
enum server_route { SERVER_ROUTES(SERVER_ROUTE_ID) SERVER_N_ROUTES };
enum metrics_listener { SERVER_LISTENERS(SERVER_ROUTE_ID) SERVER_N_LISTENERS };
#undef SERVER_ROUTE_ID

/* The path of a route ("other" for ROUTE_OTHER). */
static inline const char *server_route_path(enum server_route r)
{
	static const char *const paths[] = {
#define SERVER_ROUTE_NAME(id, name) [id] = name,
		SERVER_ROUTES(SERVER_ROUTE_NAME)
#undef SERVER_ROUTE_NAME
	};

	return paths[r];
}

/* The metric label of a listener ("https" or "metrics"). */
static inline const char *server_listener_name(enum metrics_listener l)
{
	static const char *const names[] = {
#define SERVER_LISTENER_NAME(id, name) [id] = name,
		SERVER_LISTENERS(SERVER_LISTENER_NAME)
#undef SERVER_LISTENER_NAME
	};

	return names[l];
}

#endif
