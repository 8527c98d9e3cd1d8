/*
 * clock: the daemon's time readings in one place. Elapsed times, timeouts and
 * rate limits read CLOCK_MONOTONIC (a wall-clock step must not cut a request or
 * refill a token bucket); only pthread_cond_timedwait, which takes a
 * CLOCK_REALTIME instant, gets a real-time deadline.
 */
#ifndef PIW_CLOCK_H
#define PIW_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. */
int64_t clock_now_ms(void);

/* CLOCK_MONOTONIC in seconds, for durations reported with sub-ms precision and
 * the lookup rate limiter. */
double clock_now_seconds(void);

/* A relative span of ms milliseconds (ms >= 0), for sigtimedwait and the like. */
struct timespec clock_span(int64_t ms);

/* The CLOCK_REALTIME instant ms milliseconds from now, for
 * pthread_cond_timedwait. */
struct timespec clock_realtime_in(int64_t ms);

/* Sleeps ms milliseconds on CLOCK_MONOTONIC; a signal does not cut it short. */
void clock_sleep_ms(int64_t ms);

#endif
