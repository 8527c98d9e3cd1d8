/*
 * log: one line per event on standard error, as a JSON object or key=value text.
 * Levels, an event name, then string key/value pairs. Used by the shell only (the
 * server, the ServiceAccount sources, serve); the pure core never logs. Never pass
 * tokens, keys or whole pod specs.
 */
#ifndef PIW_LOG_H
#define PIW_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
};

/*
 * Sets the least severe level written and the format. Call once, before any thread
 * starts (the settings are read without locks afterwards).
 */
void log_setup(enum log_level min_level, bool json);

/* Maps "debug", "info", "warn", "error"; LOG_INFO for anything else. */
enum log_level log_level_parse(const char *name);

/* Whether events at this level are written (to skip building costly values). */
bool log_enabled(enum log_level level);

/*
 * The time of a line, RFC 3339 in UTC with milliseconds: sec and nsec since the
 * epoch as CLOCK_REALTIME gives them (2026-12-04T15:43:15.524Z), clamped to the
 * years 0000-9999. Computed, not asked of gmtime_r, which takes glibc's
 * time-zone lock on every call.
 */
#define LOG_TIME_SIZE 32
void log_time_text(char out[LOG_TIME_SIZE], long long sec, long nsec);

/*
 * Writes one event: `event` names it, then key, value pairs (const char *) end with
 * NULL. A NULL value is written as an empty string. Each line is written with one
 * write(2), so lines from different threads do not interleave.
 */
void log_event(enum log_level level, const char *event, ...)
	__attribute__((sentinel));

#endif
