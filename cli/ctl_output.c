/* ctl_output: the human form of every answer: aligned tables (columns as wide as their widest cell,
 * counted in characters, numbers right-aligned), "label  value" blocks for single objects, durations in
 * sd_duration's units and byte counts in B/KiB/MiB/GiB. One printer per command, in a table indexed by
 * the shared command enum; a command without a printer shows its result as JSON. Reads only what it
 * is given; missing fields print as "-". Every string that came from the server is printed through
 * ctl_escape (client-chosen text must not reach the terminal raw). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "sd_duration.h"

#define MAX_COLS 10

/* --- a small table --- */

struct table {
  size_t ncols;
  const char *headers[MAX_COLS];
  bool right[MAX_COLS]; /* right-aligned (numbers) */
  char **cells;         /* nrows * ncols, owned */
  size_t nrows, cap;
};

/* Display width of UTF-8 TEXT: its number of code points. */
static size_t width(const char *text) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) n += (*p & 0xC0) != 0x80;
  return n;
}

static void table_row(struct table *t, const char *const *values) {
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    char **nc = realloc(t->cells, cap * t->ncols * sizeof *nc);
    if (nc == NULL) return;
    t->cells = nc;
    t->cap = cap;
  }
  for (size_t i = 0; i < t->ncols; i++)
    t->cells[t->nrows * t->ncols + i] = ctl_escape(values[i] ? values[i] : "-");
  t->nrows++;
}

static void print_cell(const char *text, size_t w, bool right, bool last) {
  size_t pad = w - width(text);
  if (right) printf("%*s", (int)pad, "");
  fputs(text, stdout);
  if (!right && !last) printf("%*s", (int)pad, "");
  if (!last) fputs("  ", stdout);
}

/* Prints and frees the table. */
static void table_print(struct table *t) {
  size_t w[MAX_COLS];
  for (size_t c = 0; c < t->ncols; c++) {
    w[c] = width(t->headers[c]);
    for (size_t r = 0; r < t->nrows; r++) {
      const char *cell = t->cells[r * t->ncols + c];
      if (cell && width(cell) > w[c]) w[c] = width(cell);
    }
  }
  for (size_t c = 0; c < t->ncols; c++) print_cell(t->headers[c], w[c], t->right[c], c + 1 == t->ncols);
  putchar('\n');
  for (size_t r = 0; r < t->nrows; r++) {
    for (size_t c = 0; c < t->ncols; c++) {
      const char *cell = t->cells[r * t->ncols + c];
      print_cell(cell ? cell : "?", w[c], t->right[c], c + 1 == t->ncols);
      free(t->cells[r * t->ncols + c]);
    }
    putchar('\n');
  }
  free(t->cells);
}

/* --- field formatting --- */

static const char *str(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "-";
}

static const char *user_of(json_t *o) {
  const char *u = json_string_value(json_object_get(o, "user"));
  return u == NULL ? "-" : u[0] ? u : "(anonymous)";
}

static char *num(json_t *o, const char *key, char *buf, size_t len) {
  json_t *v = json_object_get(o, key);
  if (json_is_integer(v))
    snprintf(buf, len, "%lld", (long long)json_integer_value(v));
  else
    snprintf(buf, len, "-");
  return buf;
}

static char *duration(json_t *o, const char *key, char *buf, size_t len) {
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? sd_duration_format(json_integer_value(v), buf, len) : strcpy(buf, "-");
}

static char *bytes(json_t *o, const char *key, char *buf, size_t len) {
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? ctl_format_bytes((unsigned long long)json_integer_value(v), buf, len)
                            : strcpy(buf, "-");
}

/* "3s ago", or "never" for null. */
static char *ago(json_t *o, const char *key, char *buf, size_t len) {
  json_t *v = json_object_get(o, key);
  if (!json_is_integer(v)) return strcpy(buf, "never");
  char d[32];
  snprintf(buf, len, "%s ago", sd_duration_format(json_integer_value(v), d, sizeof d));
  return buf;
}

char *ctl_format_bytes(unsigned long long n, char *buf, size_t len) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (n < 1024) {
    snprintf(buf, len, "%llu B", n);
    return buf;
  }
  double v = (double)n / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) v /= 1024, u++;
  snprintf(buf, len, "%.1f %s", v, units[u]);
  return buf;
}

/* One "label  value" row; VALUE may hold client-chosen text and is printed escaped. */
static void kv(const char *label, const char *value) {
  printf("%-15s ", label);
  ctl_put(value, stdout);
  putchar('\n');
}

/* --- one printer per command --- */

typedef void (*printer_fn)(json_t *args, json_t *result);

/* The "messages" and "bytes" rows (in and out) that info and session share. */
static void traffic(json_t *r) {
  char a[48], b[48], line[128];
  snprintf(line, sizeof line, "%s in, %s out", num(r, "messages_in", a, sizeof a),
           num(r, "messages_out", b, sizeof b));
  kv("messages", line);
  snprintf(line, sizeof line, "%s in, %s out", bytes(r, "bytes_in", a, sizeof a),
           bytes(r, "bytes_out", b, sizeof b));
  kv("bytes", line);
}

static void print_info(json_t *args, json_t *r) {
  (void)args;
  char a[32];
  kv("node", str(r, "uid"));
  kv("name", str(r, "name"));
  kv("version", str(r, "version"));
  kv("uptime", duration(r, "uptime_ms", a, sizeof a));
  kv("engine", str(r, "engine"));
  kv("sessions", num(r, "num_clients", a, sizeof a));
  kv("users", num(r, "num_users", a, sizeof a));
  kv("channels", num(r, "num_channels", a, sizeof a));
  kv("subscriptions", num(r, "num_subs", a, sizeof a));
  traffic(r);
  kv("publications", num(r, "publications", a, sizeof a));
  kv("connections", num(r, "connections", a, sizeof a));
  kv("queue drops", num(r, "queue_drops", a, sizeof a));
}

static void print_sessions(json_t *args, json_t *r) {
  (void)args;
  struct table t = {
      9,
      {"CLIENT", "SESSION", "USER", "TRANSPORT", "PROTOCOL", "REMOTE", "CONNECTED", "SUBS", "QUEUED"},
      {[6] = true, [7] = true, [8] = true},
      NULL,
      0,
      0};
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(r, "sessions"), i, s) {
    char conn[32], subs[32], queued[32];
    const char *row[] = {str(s, "client"),
                         str(s, "session"),
                         user_of(s),
                         str(s, "transport"),
                         str(s, "protocol"),
                         str(s, "remote"),
                         duration(s, "connected_ms", conn, sizeof conn),
                         num(s, "subscriptions", subs, sizeof subs),
                         bytes(s, "queued_bytes", queued, sizeof queued)};
    table_row(&t, row);
  }
  if (t.nrows == 0)
    puts("no sessions");
  else
    table_print(&t);
}

static void print_session(json_t *args, json_t *r) {
  (void)args;
  char a[48], line[128];
  kv("client", str(r, "client"));
  kv("session", str(r, "session"));
  kv("user", user_of(r));
  snprintf(line, sizeof line, "%s %s", str(r, "name"), str(r, "version"));
  kv("sdk", line);
  kv("state", str(r, "state"));
  kv("transport", str(r, "transport"));
  kv("protocol", str(r, "protocol"));
  kv("remote", str(r, "remote"));
  kv("connected", duration(r, "connected_ms", a, sizeof a));
  kv("queued", bytes(r, "queued_bytes", a, sizeof a));
  traffic(r);
  kv("last ping", ago(r, "last_ping_ago_ms", a, sizeof a));
  kv("last pong", ago(r, "last_pong_ago_ms", a, sizeof a));
  kv("subscriptions", num(r, "subscriptions", a, sizeof a));
  size_t i;
  json_t *ch;
  json_array_foreach(json_object_get(r, "channels"), i, ch) {
    fputs("  ", stdout);
    ctl_put(json_string_value(ch), stdout);
    putchar('\n');
  }
}

/* "100 pubs, 5m" or "off". */
static char *history(json_t *o, char *buf, size_t len) {
  json_int_t size = json_integer_value(json_object_get(o, "history_size"));
  char ttl[32];
  if (size <= 0) return strcpy(buf, "off");
  snprintf(buf, len, "%lld pubs, %s", (long long)size, duration(o, "history_ttl_ms", ttl, sizeof ttl));
  return buf;
}

static const char *on_off(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return v == NULL ? "-" : json_is_true(v) ? "on" : "off";
}

static void print_channels(json_t *args, json_t *r) {
  (void)args;
  struct table t = {6,
                    {"CHANNEL", "SUBSCRIBERS", "PUBS", "OFFSET", "HISTORY", "PRESENCE"},
                    {[1] = true, [2] = true, [3] = true},
                    NULL,
                    0,
                    0};
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(r, "channels"), i, c) {
    char subs[32], pubs[32], offset[32], hist[64];
    const char *row[] = {str(c, "channel"),
                         num(c, "subscribers", subs, sizeof subs),
                         num(c, "num_pubs", pubs, sizeof pubs),
                         num(c, "offset", offset, sizeof offset),
                         history(c, hist, sizeof hist),
                         on_off(c, "presence")};
    table_row(&t, row);
  }
  if (t.nrows == 0)
    puts("no channels");
  else
    table_print(&t);
}

static void print_channel(json_t *args, json_t *r) {
  (void)args;
  char a[64];
  const char *ns = json_string_value(json_object_get(r, "namespace"));
  kv("channel", str(r, "channel"));
  kv("namespace", ns && ns[0] ? ns : "(none)");
  kv("subscribers", num(r, "subscribers", a, sizeof a));
  char line[160], b[32], d[32];
  if (json_object_get(r, "presence_clients"))
    snprintf(line, sizeof line, "on (%s clients, %s users)", num(r, "presence_clients", b, sizeof b),
             num(r, "presence_users", d, sizeof d));
  kv("presence", json_object_get(r, "presence_clients") ? line : on_off(r, "presence"));
  kv("join/leave", on_off(r, "join_leave"));
  kv("history", history(r, a, sizeof a));
  if (json_object_get(r, "epoch")) {
    snprintf(line, sizeof line, "%s kept, last offset %s, epoch %s", num(r, "num_pubs", b, sizeof b),
             num(r, "offset", d, sizeof d), str(r, "epoch"));
    kv("", line);
  }
  struct table t = {3, {"CLIENT", "SESSION", "USER"}, {0}, NULL, 0, 0};
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(r, "clients"), i, c) {
    const char *row[] = {str(c, "client"), str(c, "session"), user_of(c)};
    table_row(&t, row);
  }
  if (t.nrows == 0) return;
  putchar('\n');
  table_print(&t);
}

static void print_publish(json_t *args, json_t *r) {
  fputs("published to ", stdout);
  ctl_put(str(args, "channel"), stdout);
  if (json_object_get(r, "epoch")) {
    printf(" (offset %lld, epoch ", (long long)json_integer_value(json_object_get(r, "offset")));
    ctl_put(str(r, "epoch"), stdout);
    putchar(')');
  }
  putchar('\n');
}

static void print_message(json_t *args, json_t *r) {
  (void)r;
  fputs("message sent to ", stdout);
  ctl_put(str(args, "id"), stdout);
  putchar('\n');
}

static void print_disconnect(json_t *args, json_t *r) {
  (void)args;
  fputs("disconnected ", stdout);
  ctl_put(str(r, "client"), stdout);
  printf(" (code %lld)\n", (long long)json_integer_value(json_object_get(r, "code")));
}

static void print_unsubscribe(json_t *args, json_t *r) {
  (void)r;
  fputs("unsubscribed ", stdout);
  ctl_put(str(args, "id"), stdout);
  fputs(" from ", stdout);
  ctl_put(str(args, "channel"), stdout);
  putchar('\n');
}

static void print_reload(json_t *args, json_t *r) {
  (void)args, (void)r;
  puts("reload requested");
}

static const printer_fn printers[SD_ADMIN_CMD_COUNT] = {
    [SD_ADMIN_INFO] = print_info,
    [SD_ADMIN_SESSIONS] = print_sessions,
    [SD_ADMIN_SESSION] = print_session,
    [SD_ADMIN_CHANNELS] = print_channels,
    [SD_ADMIN_CHANNEL] = print_channel,
    [SD_ADMIN_PUBLISH] = print_publish,
    [SD_ADMIN_MESSAGE] = print_message,
    [SD_ADMIN_DISCONNECT] = print_disconnect,
    [SD_ADMIN_UNSUBSCRIBE] = print_unsubscribe,
    [SD_ADMIN_RELOAD] = print_reload,
};

void ctl_print(const struct sd_admin_command *cmd, json_t *args, json_t *result) {
  printer_fn fn = printers[cmd->id];
  if (fn) {
    fn(args, result);
    return;
  }
  char *text = json_dumps(result, JSON_INDENT(2) | JSON_ENSURE_ASCII); /* no raw client text */
  if (text) puts(text);
  free(text);
}

void ctl_print_publication(json_t *line) {
  json_t *pub = json_object_get(line, "publication");
  char stamp[16], *data = json_dumps(json_object_get(pub, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
  time_t now = time(NULL);
  struct tm tm;
  strftime(stamp, sizeof stamp, "%H:%M:%S", localtime_r(&now, &tm));
  printf("%s  ", stamp);
  ctl_put(str(line, "channel"), stdout);
  json_t *offset = json_object_get(pub, "offset");
  if (offset) printf("  offset %lld", (long long)json_integer_value(offset));
  fputs("  ", stdout);
  ctl_put(data ? data : "-", stdout);
  json_t *info = json_object_get(pub, "info");
  if (info) {
    fputs("  (from ", stdout);
    ctl_put(str(info, "client"), stdout);
    fputs(", user ", stdout);
    ctl_put(user_of(info), stdout);
    putchar(')');
  }
  putchar('\n');
  free(data);
}
