/*
 * clock: monotonic readings in ms or seconds, relative spans, the real-time
 * deadline pthread_cond_timedwait wants, and an uninterrupted sleep. The
 * timespec arithmetic lives here once.
 */
#include "clock.h"

#include <errno.h>

#define NS_PER_MS 1000000L
#define NS_PER_S  1000000000L

int64_t clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}

double clock_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct timespec clock_span(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
			       (long)(ms % 1000) * NS_PER_MS };

	return ts;
}

/* now + ms on the given clock, normalised (tv_nsec below one second). */
static struct timespec later(clockid_t clock, int64_t ms)
{
	struct timespec t;

	clock_gettime(clock, &t);
	t.tv_sec += (time_t)(ms / 1000);
	t.tv_nsec += (long)(ms % 1000) * NS_PER_MS;
	if (t.tv_nsec >= NS_PER_S) {
		t.tv_sec++;
		t.tv_nsec -= NS_PER_S;
	}
	return t;
}

struct timespec clock_realtime_in(int64_t ms)
{
	return later(CLOCK_REALTIME, ms);
}

void clock_sleep_ms(int64_t ms)
{
	struct timespec until = later(CLOCK_MONOTONIC, ms);
	int rc;

	do
		rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until,
				     NULL);
	while (rc == EINTR);
}
