/*
 * l1text.h - the text l1ctl and l1fs both print about a pool, in one style:
 * sizes in binary units (KiB, MiB, GiB), durations in µs/ms/s, times as ISO
 * 8601 UTC, keys escaped for a terminal (\xHH for every byte outside
 * printable ASCII, and for the backslash), JSON strings, and the pool's
 * Prometheus families (every series labelled pool="PATH", so several pools
 * go through one node_exporter).  Pure formatting over the public API of
 * l1arena.h; no state.
 */
#ifndef L1TEXT_H
#define L1TEXT_H

#include <stdint.h>
#include <stdio.h>
#include "l1arena.h"

/* "512 B", "1.50 GiB" */
const char *l1t_size(uint64_t bytes, char *buf, size_t len);
/* "850 µs", "12.3 ms", "4.20 s" */
const char *l1t_duration(uint64_t ns, char *buf, size_t len);
/* "2026-12-01T15:00:00.123Z" (UTC); "-" for 0 */
const char *l1t_time(uint64_t ns, char *buf, size_t len);
/* a key for people: printable ASCII but '\' as is, every other byte \xHH;
 * "-" for an empty key.  Never emits a control byte or a newline. */
void l1t_key(FILE *f, const char *key);
/* a sentence that may quote a key (an error message): control bytes and
 * DEL as \xHH, the rest as it is, so nothing reaches a terminal as a
 * control sequence */
void l1t_safe(FILE *f, const char *s);
/* a JSON string, quotes included (\", \\, \uXXXX for control bytes; other
 * bytes >= 0x80 as \u00XX, so any key gives valid JSON) */
void l1t_json_str(FILE *f, const char *s);
/* a Prometheus label value: \\, \", \n escaped */
void l1t_label(FILE *f, const char *s);
/* what a pin status is called */
const char *l1t_pin_name(uint32_t status);

/* The pool's families in the Prometheus text format (0.0.4): HELP and TYPE
 * for each, counters ending in _total, units in the names.  Returns 0 or a
 * negative errno. */
int l1t_metrics(FILE *f, struct l1_arena *a);
/* One family header: # HELP and # TYPE. */
void l1t_family(FILE *f, const char *name, const char *type, const char *help);
/* name{pool="PATH"} value, with the family header first. */
void l1t_sample(FILE *f, struct l1_arena *a, const char *name, const char *type,
		const char *help, double v);
/* name{pool="PATH" (then the caller adds ,label="..."} value) */
void l1t_series(FILE *f, struct l1_arena *a, const char *name);

#endif
