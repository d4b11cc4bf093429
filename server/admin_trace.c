/* admin_trace: what `trace` writes to its reader: the acknowledgement, and each recorded event
 * (trace.h) as JSON lines, decoded with trace_decode.h: one line per command fed in, per frame queued
 * out, per emulation POST, per run of dropped events, and the end line. One writer per event kind, in a
 * table. Pure formatting: no state, any thread (admin.c calls it on the admin thread). */
#include "admin.h"
#include "session.h"
#include "trace.h"
#include "trace_decode.h"

/* One line: time, direction, transport, size, type; the writer adds the rest. A new object. */
static json_t *line_of(const struct trace_info *info, const struct trace_event *ev, const char *dir,
                       const char *type) {
  return json_pack("{sI ss? ss sI ss}", "time_ms", (json_int_t)ev->time_ms, "dir", dir, "transport",
                   info->transport, "size", (json_int_t)ev->size, "type", type);
}

struct writer_ctx {
  const struct trace_info *info;
  const struct trace_event *ev;
  uint64_t dropped; /* the trace's total so far, for the end line */
  void (*emit)(void *arg, json_t *line);
  void *arg;
};

static void command_line(void *arg, json_t *command, size_t size, enum trace_frame_type type) {
  struct writer_ctx *w = arg;
  json_t *line = line_of(w->info, w->ev, "in", trace_frame_type_name(type));
  json_object_set_new(line, "size", json_integer((json_int_t)size));
  json_object_set_new(line, "frame", command);
  w->emit(w->arg, line);
}

/* TRACE_EV_IN: the bytes fed in, one line per command they hold. */
static void write_in(struct writer_ctx *w) {
  const struct frame *f = w->ev->frame;
  if (f) trace_decode_commands(w->info->codec, f->data, f->len, command_line, w);
}

static void write_out(struct writer_ctx *w) {
  enum trace_frame_type type;
  json_t *frame = trace_decode_reply(w->info->codec, w->ev->frame->data, w->ev->frame->len, &type);
  json_t *line = line_of(w->info, w->ev, "out", trace_frame_type_name(type));
  json_object_set_new(line, "frame", frame);
  w->emit(w->arg, line);
}

static void write_emulation(struct writer_ctx *w) {
  json_t *line = line_of(w->info, w->ev, "in", "emulation");
  json_object_set_new(line, "status", w->ev->status ? json_integer(w->ev->status) : json_string("routed"));
  w->emit(w->arg, line);
}

/* TRACE_EV_CLOSING writes nothing: the end line carries its code. */
static void write_nothing(struct writer_ctx *w) { (void)w; }

static void write_end(struct writer_ctx *w) {
  w->emit(w->arg, json_pack("{sIsssIsI}", "time_ms", (json_int_t)w->ev->time_ms, "type", "end", "code",
                            (json_int_t)w->ev->code, "dropped", (json_int_t)w->dropped));
}

static void (*const writers[])(struct writer_ctx *w) = {
    [TRACE_EV_IN] = write_in,           [TRACE_EV_OUT] = write_out, [TRACE_EV_EMULATION] = write_emulation,
    [TRACE_EV_CLOSING] = write_nothing, [TRACE_EV_END] = write_end,
};

bool admin_trace_lines(const struct trace_info *info, const struct trace_event *ev, uint64_t dropped,
                       void (*emit)(void *arg, json_t *line), void *arg) {
  struct writer_ctx w = {info, ev, dropped, emit, arg};
  writers[ev->kind](&w);
  return ev->kind == TRACE_EV_END;
}

json_t *admin_trace_dropped_line(uint64_t count) {
  return json_pack("{sssI}", "type", "dropped", "count", (json_int_t)count);
}

json_t *admin_trace_ack(struct session *s, const struct trace_info *info) {
  return json_pack("{s{s{sssssssss{sisisi}}}}", "result", "tracing", "client", s->client_id, "session",
                   s->session_id, "transport", info->transport, "protocol", s->codec->name, "limits",
                   "traces", TRACE_MAX, "queue_events", TRACE_QUEUE_EVENTS, "queue_bytes", TRACE_QUEUE_BYTES);
}
