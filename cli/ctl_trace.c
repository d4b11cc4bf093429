/* ctl_trace: `streamctl trace ID`: a connection of its own, the server's acknowledgement (what is
 * traced, on stderr), then one line per frame or event until the server's end line (the session
 * ended: exit 0), Ctrl-C (0) or a lost connection (1). With --json each line is printed as the
 * server sent it; otherwise as "time  dir  transport  size  type  frame", the frame as compact JSON.
 * Everything from the server goes through ctl_escape before it reaches the terminal. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

/* "16:40:01.123" of unix milliseconds MS. */
static char *clock_of(json_int_t ms, char *buf, size_t len) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  char hms[16];
  strftime(hms, sizeof hms, "%H:%M:%S", localtime_r(&t, &tm));
  snprintf(buf, len, "%s.%03d", hms, (int)(ms % 1000));
  return buf;
}

static const char *text(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "-";
}

/* A whole line for the events that are no frame. */
static void print_dropped(json_t *line, const char *when, FILE *out) {
  (void)when; /* the server does not time a run of drops */
  fprintf(out, "%-12s  %lld events dropped: the trace could not keep up\n", "",
          (long long)json_integer_value(json_object_get(line, "count")));
}

static void print_end(json_t *line, const char *when, FILE *out) {
  fprintf(out, "%s  end  disconnect code %lld", when,
          (long long)json_integer_value(json_object_get(line, "code")));
  json_int_t dropped = json_integer_value(json_object_get(line, "dropped"));
  if (dropped) fprintf(out, " (%lld events dropped in all)", (long long)dropped);
  fputc('\n', out);
}

/* What follows "time dir transport size type" on a frame's line. */
static void print_post(json_t *line, FILE *out) {
  json_t *status = json_object_get(line, "status");
  if (json_is_integer(status))
    fprintf(out, "POST answered %lld\n", (long long)json_integer_value(status));
  else
    fputs("POST routed from another node\n", out);
}

static void print_frame(json_t *line, FILE *out) {
  char *frame = json_dumps(json_object_get(line, "frame"), JSON_COMPACT | JSON_ENCODE_ANY);
  ctl_put(frame ? frame : "-", out);
  fputc('\n', out);
  free(frame);
}

/* Lines of their own, by type; every other type is a frame's line, ended by print_frame. */
static const struct {
  const char *type;
  void (*whole)(json_t *line, const char *when, FILE *out); /* the whole line */
  void (*tail)(json_t *line, FILE *out);                    /* after the frame columns */
} kinds[] = {
    {"dropped", print_dropped, NULL},
    {"end", print_end, NULL},
    {"emulation", NULL, print_post},
};

void ctl_print_trace_line(json_t *line, FILE *out) {
  char when[32], size[32];
  const char *type = text(line, "type");
  void (*tail)(json_t *, FILE *) = print_frame;
  clock_of(json_integer_value(json_object_get(line, "time_ms")), when, sizeof when);
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    if (strcmp(kinds[i].type, type) != 0) continue;
    if (kinds[i].whole) {
      kinds[i].whole(line, when, out);
      return;
    }
    tail = kinds[i].tail;
  }
  ctl_format_bytes((unsigned long long)json_integer_value(json_object_get(line, "size")), size, sizeof size);
  fprintf(out, "%s  %-3s  ", when, text(line, "dir"));
  ctl_put(text(line, "transport"), out);
  fprintf(out, "  %8s  ", size);
  ctl_put(type, out);
  fprintf(out, "%*s  ", (int)(strlen(type) < 10 ? 10 - strlen(type) : 0), "");
  tail(line, out);
}

/* Prints lines from C until the end line, Ctrl-C or a lost connection. */
static int trace_loop(struct ctl *ctl, struct ctl_conn *c) {
  for (;;) {
    json_t *value = NULL;
    const char *line;
    int rc = ctl_conn_recv(c, &value, &line);
    if (rc == 1) return CTL_OK;
    if (rc == -1) {
      fprintf(stderr, "streamctl: the server ended the trace\n");
      return CTL_ESERVER;
    }
    bool end = rc == 0 && strcmp(text(value, "type"), "end") == 0;
    if (ctl->json)
      printf("%s\n", line);
    else if (rc == 0)
      ctl_print_trace_line(value, stdout);
    json_decref(value);
    fflush(stdout);
    if (end) return CTL_OK;
  }
}

static int follow_trace(struct ctl *ctl, struct ctl_conn *c, json_t *what, const char *line) {
  if (ctl->json) printf("%s\n", line);
  fputs("tracing client ", stderr);
  ctl_put(text(what, "client"), stderr);
  fputs(" (session ", stderr);
  ctl_put(text(what, "session"), stderr);
  fputs(", ", stderr);
  ctl_put(text(what, "transport"), stderr);
  fputs(", ", stderr);
  ctl_put(text(what, "protocol"), stderr);
  fputs(") until it ends (Ctrl-C to stop)\n", stderr);
  return trace_loop(ctl, c);
}

int ctl_trace(struct ctl *ctl, json_t *request) {
  return ctl_stream(ctl, request, "tracing", follow_trace);
}
