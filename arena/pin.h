/*
 * pin.h - CUDA pinning of this process's mapping (internal).  libcudart is
 * loaded at run time with dlopen (never linked), so one build runs with and
 * without CUDA.  The manager hands the pin module chunks of the mapping (one
 * growth step each, never more than 64 GiB, objects never straddle one) as
 * they become committed; the module registers each with cudaHostRegister
 * (Portable, plus Mapped when asked), remembers what it registered, and
 * unregisters everything at close.  When CUDA is missing, has no driver or
 * device, is disabled, or refuses a registration, the module says so in
 * reason() and reports the chunk as unpinned: a chunk that failed is never
 * counted as pinned.  Thread-safety: calls are serialised by an internal
 * mutex.  Rule for users: never detach (which unregisters) while another
 * thread of the same process still copies from the pool.
 */
#ifndef L1_PIN_H
#define L1_PIN_H

#include <stdint.h>

struct l1_pin;
struct l1_range;

/* mode: enum l1_pin_mode.  Env L1ARENA_CUDART names the library to load
 * (default: libcudart.so, libcudart.so.13, .12, .11); L1ARENA_PIN=off
 * disables.  Never fails for lack of CUDA: returns 0 with an inactive
 * module whose reason() says why. */
int l1_pin_open(int32_t mode, int32_t mapped, struct l1_pin **out);
/* Registers [p, p+len) unless already registered.  0 if pinned, or a
 * negative errno (module inactive: -ENODEV) with reason() set. */
int l1_pin_chunk(struct l1_pin *pn, void *p, uint64_t len);
/* Unregisters everything registered and unloads the library.  NULL ok. */
void l1_pin_close(struct l1_pin *pn);
/* enum l1_pin_status and the sentence behind it. */
uint32_t l1_pin_status(const struct l1_pin *pn);
const char *l1_pin_reason(const struct l1_pin *pn);
uint64_t l1_pin_bytes(const struct l1_pin *pn);
/* Registered ranges relative to base; returns count (up to max written). */
int l1_pin_ranges(const struct l1_pin *pn, const void *base,
		  struct l1_range *out, uint32_t max);

#endif
