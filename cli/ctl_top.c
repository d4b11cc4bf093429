/* ctl_top: `streamctl top`: asks the server for every node's cumulative counters (the `top` request)
 * once per --interval over a connection of its own, and shows what changed between two samples as
 * rates: per node, sessions by transport and protocol, messages and bytes in and out per second,
 * publications and emulation requests per second (by HTTP status), queue drops and disconnects by code
 * in the interval, then the --channels busiest channels by publications per second. A node's rates use
 * its own uptime between its two samples as the time base, so a slow survey skews nothing.
 *
 * On a terminal the view is full screen (the alternate screen, redrawn from the cursor's home with
 * plain ANSI, the cursor hidden, stdin without line buffering or echo so that `q` quits at once);
 * the terminal is restored on every exit: q, Ctrl-C, SIGTERM, SIGHUP or a lost server. Otherwise each
 * interval prints one block of lines, the first after the second sample (a rate needs two); with
 * --json, every sample as one line of JSON, as the server sent it. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "sd_duration.h"

#define TOP_DEFAULT_INTERVAL_MS 1000
#define TOP_MIN_INTERVAL_MS 100
#define TOP_MAX_INTERVAL_MS 3600000
#define TOP_DEFAULT_CHANNELS 10

struct top {
  int64_t interval_ms;
  size_t channels;
  bool tty;
  FILE *out; /* the frame being drawn (a memory stream) */
};

/* --- numbers out of a sample --- */

static json_int_t num(json_t *o, const char *key) { return json_integer_value(json_object_get(o, key)); }

/* The node of PREV with the uid of NODE, or NULL. */
static json_t *same_node(json_t *prev, json_t *node) {
  const char *uid = json_string_value(json_object_get(node, "uid"));
  size_t i;
  json_t *p;
  json_array_foreach(prev, i, p) {
    const char *u = json_string_value(json_object_get(p, "uid"));
    if (uid && u && strcmp(uid, u) == 0) return p;
  }
  return NULL;
}

/* What CUR[KEY] grew by since PREV[KEY] (0 when it shrank: the node restarted; 0 when PREV is a node
 * that did not answer). */
static double grew(json_t *cur, json_t *prev, const char *key) {
  if (json_is_false(json_object_get(prev, "answered"))) return 0;
  json_int_t a = num(cur, key), b = num(prev, key);
  return a > b ? (double)(a - b) : 0;
}

/* --- drawing --- */

static void put_escaped(struct top *t, const char *s) { ctl_put(s ? s : "-", t->out); }

/* Ends a line: on a terminal also clears what the previous frame left to its right. */
static void eol(struct top *t) { fputc('\n', t->out); }

static void draw_sessions(struct top *t, json_t *node) {
  json_int_t total = 0;
  const char *transport, *protocol;
  json_t *row, *n;
  json_object_foreach(json_object_get(node, "sessions"), transport, row) {
    json_object_foreach(row, protocol, n) total += json_integer_value(n);
  }
  fprintf(t->out, "  sessions %lld", (long long)total);
  const char *sep = ": ";
  json_object_foreach(json_object_get(node, "sessions"), transport, row) {
    json_object_foreach(row, protocol, n) {
      fputs(sep, t->out);
      put_escaped(t, transport);
      fputc('/', t->out);
      put_escaped(t, protocol);
      fprintf(t->out, " %lld", (long long)json_integer_value(n));
      sep = ", ";
    }
  }
  eol(t);
}

/* "  LABEL 12.0 (204: 11.0, 400: 1.0)": the per-second growth of each member of OBJECT KEY, or for
 * COUNTS (not per second) the growth in the interval; members that did not grow are left out. */
static void draw_by_key(struct top *t, const char *label, json_t *cur, json_t *prev, const char *key,
                        double dt, bool counts) {
  json_t *c = json_object_get(cur, key), *p = json_object_get(prev, key);
  const char *name;
  json_t *v;
  double total = 0;
  json_object_foreach(c, name, v) total += grew(c, p, name);
  fprintf(t->out, counts ? "  %s %.0f" : "  %s %.1f", label, counts ? total : total / dt);
  const char *sep = " (";
  json_object_foreach(c, name, v) {
    double g = grew(c, p, name);
    if (g == 0) continue;
    fprintf(t->out, counts ? "%s%s: %.0f" : "%s%s: %.1f", sep, name, counts ? g : g / dt);
    sep = ", ";
  }
  if (sep[0] == ',') fputc(')', t->out);
  eol(t);
}

struct channel_rate {
  json_t *row;
  double rate;
};

static int busiest(const void *a, const void *b) {
  const struct channel_rate *x = a, *y = b;
  if (x->rate != y->rate) return x->rate > y->rate ? -1 : 1;
  return (int)(num(y->row, "subscribers") - num(x->row, "subscribers"));
}

/* The publications CHANNEL had in PREV's sample of the node (0: it had no local subscriber then). */
static json_int_t prev_publications(json_t *prev, const char *channel) {
  size_t i;
  json_t *row;
  json_array_foreach(json_object_get(prev, "channels"), i, row) {
    const char *name = json_string_value(json_object_get(row, "channel"));
    if (name && strcmp(name, channel) == 0) return num(row, "publications");
  }
  return 0;
}

static void draw_channels(struct top *t, json_t *cur, json_t *prev, double dt) {
  json_t *rows = json_object_get(cur, "channels");
  size_t n = json_array_size(rows), i;
  struct channel_rate *v = calloc(n + 1, sizeof *v);
  json_t *row;
  if (v == NULL) return;
  json_array_foreach(rows, i, row) {
    const char *name = json_string_value(json_object_get(row, "channel"));
    json_int_t before = name ? prev_publications(prev, name) : 0, now = num(row, "publications");
    v[i] = (struct channel_rate){row, now > before ? (double)(now - before) / dt : 0};
  }
  qsort(v, n, sizeof *v, busiest);
  fprintf(t->out, "  %-40s %10s %12s", "CHANNEL", "PUBS/S", "SUBSCRIBERS");
  eol(t);
  for (i = 0; i < n && i < t->channels; i++) {
    char *name = ctl_escape(json_string_value(json_object_get(v[i].row, "channel")));
    fprintf(t->out, "  %-40s %10.1f %12lld", name ? name : "-", v[i].rate,
            (long long)num(v[i].row, "subscribers"));
    free(name);
    eol(t);
  }
  free(v);
}

static void draw_node(struct top *t, json_t *cur, json_t *prev) {
  char a[32], b[32];
  fputs("node ", t->out);
  put_escaped(t, json_string_value(json_object_get(cur, "uid")));
  const char *name = json_string_value(json_object_get(cur, "name"));
  if (name && name[0]) {
    fputs(" (", t->out);
    put_escaped(t, name);
    fputc(')', t->out);
  }
  eol(t);
  if (json_is_false(json_object_get(cur, "answered"))) {
    fprintf(t->out, "  did not answer in time; %lld sessions at its last heartbeat",
            (long long)num(cur, "num_clients"));
    eol(t);
    return;
  }
  draw_sessions(t, cur);
  double dt = prev ? grew(cur, prev, "uptime_ms") / 1000 : 0;
  if (dt <= 0) {
    fputs("  (rates after the next sample)", t->out);
    eol(t);
    return;
  }
  fprintf(t->out, "  messages/s in %.1f out %.1f", grew(cur, prev, "messages_in") / dt,
          grew(cur, prev, "messages_out") / dt);
  eol(t);
  fprintf(t->out, "  bytes/s in %s out %s",
          ctl_format_bytes((unsigned long long)(grew(cur, prev, "bytes_in") / dt), a, sizeof a),
          ctl_format_bytes((unsigned long long)(grew(cur, prev, "bytes_out") / dt), b, sizeof b));
  eol(t);
  fprintf(t->out, "  publications/s %.1f", grew(cur, prev, "publications") / dt);
  eol(t);
  draw_by_key(t, "emulation/s", cur, prev, "emulation", dt, false);
  fprintf(t->out, "  queue drops %.0f", grew(cur, prev, "queue_drops"));
  eol(t);
  draw_by_key(t, "disconnects", cur, prev, "disconnects", dt, true);
  draw_channels(t, cur, prev, dt);
}

/* Shows the frame TEXT (LEN bytes of lines) from the cursor's home, each line clipped to the terminal's
 * width and cleared to its end, as many lines as the terminal has rows (so it never scrolls), then
 * clears what the previous frame left below. */
static void show_on_screen(const char *text, size_t len) {
  struct winsize ws = {0};
  size_t rows = 24, cols = 80;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
    rows = ws.ws_row, cols = ws.ws_col;
  fputs("\033[H", stdout);
  const char *p = text, *end = text + len;
  for (size_t row = 0; p < end && row < rows; row++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = (size_t)((nl ? nl : end) - p), shown = 0, bytes = 0;
    while (bytes < n && (shown < cols || (p[bytes] & 0xC0) == 0x80)) /* whole UTF-8 characters */
      shown += (p[bytes++] & 0xC0) != 0x80;
    fwrite(p, 1, bytes, stdout);
    fputs(row + 1 < rows ? "\033[K\n" : "\033[K", stdout);
    p = nl ? nl + 1 : end;
  }
  fputs("\033[J", stdout);
}

/* Draws the frame for sample CUR (PREV: the one before, or NULL) and shows it. */
static void draw(struct top *t, json_t *cur, json_t *prev) {
  char *text = NULL, stamp[32], every[32];
  size_t len = 0;
  t->out = open_memstream(&text, &len);
  if (t->out == NULL) return;
  time_t now = time(NULL);
  struct tm tm;
  strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
  fprintf(t->out, "--- top %s, every %s, %zu node%s%s ---", stamp,
          sd_duration_format(t->interval_ms, every, sizeof every), json_array_size(cur),
          json_array_size(cur) == 1 ? "" : "s", t->tty ? " (q quits)" : "");
  eol(t);
  size_t i;
  json_t *node;
  json_array_foreach(cur, i, node) draw_node(t, node, prev ? same_node(prev, node) : NULL);
  fclose(t->out);
  if (t->tty)
    show_on_screen(text, len);
  else
    fwrite(text, 1, len, stdout);
  fflush(stdout);
  free(text);
}

/* --json: each sample as the server sent it, {"nodes":[...]}, one line per interval. */
static void print_sample(json_t *nodes) {
  json_t *o = json_pack("{sO}", "nodes", nodes);
  char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
  if (text) printf("%s\n", text);
  fflush(stdout);
  free(text);
  json_decref(o);
}

/* --- the terminal --- */

static struct termios saved_termios;
static bool termios_saved;

static void on_stop_signal(int sig) {
  (void)sig;
  ctl_interrupted = 1;
}

static void terminal_enter(struct top *t) {
  struct sigaction sa = {.sa_handler = on_stop_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  if (!t->tty) return;
  fputs("\033[?1049h\033[?25l", stdout);
  fflush(stdout);
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_termios) == 0) {
    struct termios raw = saved_termios;
    raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO); /* keys one at a time; Ctrl-C still signals */
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    termios_saved = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
}

static void terminal_leave(struct top *t) {
  if (termios_saved) tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
  termios_saved = false;
  if (t->tty) fputs("\033[?25h\033[?1049l", stdout);
  fflush(stdout);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
}

/* Waits MS, or less when a key quits or a signal stops. Returns true to go on. */
static bool wait_interval(struct top *t, int64_t ms) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    if (ctl_interrupted) return false;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t gone = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (gone >= ms) return true;
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    bool keys = t->tty && termios_saved;
    int n = poll(keys ? &p : NULL, keys ? 1 : 0, (int)(ms - gone));
    if (n < 0 && errno != EINTR) return false;
    if (n > 0) {
      char key;
      if (read(STDIN_FILENO, &key, 1) != 1 || key == 'q' || key == 'Q') return false;
    }
  }
}

/* --- the loop --- */

/* Reads --interval and --channels from ARGS into T. Returns 0 or CTL_EUSAGE after saying why. */
static int read_options(struct top *t, json_t *args) {
  t->interval_ms = TOP_DEFAULT_INTERVAL_MS;
  t->channels = TOP_DEFAULT_CHANNELS;
  const char *interval = json_string_value(json_object_get(args, "interval"));
  if (interval && (sd_duration_parse(interval, &t->interval_ms) != 0 ||
                   t->interval_ms < TOP_MIN_INTERVAL_MS || t->interval_ms > TOP_MAX_INTERVAL_MS)) {
    fprintf(stderr, "streamctl: --interval must be a duration from 100ms to 1h, not '%s'\n", interval);
    return CTL_EUSAGE;
  }
  json_t *channels = json_object_get(args, "channels");
  if (channels) t->channels = (size_t)json_integer_value(channels);
  return 0;
}

/* One sample: the nodes array (new reference) in *NODES. Returns 0, 1 (interrupted) or an exit status. */
static int sample(struct ctl_conn *c, json_t *request, json_t **nodes) {
  json_t *response = NULL;
  const char *line;
  int rc = ctl_conn_send(c, request) == 0 ? ctl_conn_recv(c, &response, &line) : -1;
  if (rc == 1) return 1;
  if (rc != 0) {
    json_decref(response);
    fprintf(stderr, "streamctl: lost the connection to the server\n");
    return CTL_ECONNECT;
  }
  json_t *result = json_object_get(response, "result");
  if (result == NULL) {
    rc = ctl_server_error(response);
    json_decref(response);
    return rc;
  }
  *nodes = json_incref(json_object_get(result, "nodes"));
  json_decref(response);
  return 0;
}

int ctl_top(struct ctl *ctl, json_t *request) {
  struct top t = {0};
  int rc = read_options(&t, json_object_get(request, "args"));
  if (rc != 0) return rc;
  char err[512];
  struct ctl_conn c = {.fd = -1};
  if (ctl_conn_open(&c, ctl->socket_path, err, sizeof err) != 0) {
    fprintf(stderr, "streamctl: %s\n", err);
    return CTL_ECONNECT;
  }
  t.tty = !ctl->json && isatty(STDOUT_FILENO);
  json_t *ask = json_pack("{ss}", "cmd", "top"), *prev = NULL;
  ctl_catch_sigint(c.fd);
  terminal_enter(&t);
  for (;;) {
    json_t *cur = NULL;
    rc = sample(&c, ask, &cur);
    if (rc != 0) break;
    if (ctl->json)
      print_sample(cur);
    else if (t.tty || prev)
      draw(&t, cur, prev);
    json_decref(prev);
    prev = cur;
    if (!wait_interval(&t, t.interval_ms)) break;
  }
  terminal_leave(&t);
  ctl_release_sigint();
  json_decref(prev);
  json_decref(ask);
  ctl_conn_close(&c);
  return rc == 1 ? CTL_OK : rc;
}
