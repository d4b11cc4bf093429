/* log: leveled logging to stderr, one line per call, with a timestamp and the level. The level is a
 * process-wide atomic, so SIGHUP reloads can change it while other threads log. */
#ifndef LOG_H
#define LOG_H

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Sets the minimum level printed. Any thread. */
void log_set_level(enum log_level level);

/* Parses "debug", "info", "warn", "error" into *out. Returns 0, or -1 for anything else. */
int log_level_parse(const char *name, enum log_level *out);

/* True when LEVEL would be printed: guard expensive argument building with it. Any thread. */
int log_enabled(enum log_level level);

/* Prints one line at LEVEL (dropped when below the current level). Any thread. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
