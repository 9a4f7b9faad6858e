/*
 * l1arena_test.h - hooks for the crash tests, not for applications: a
 * function the library calls at named points inside the pool lock, so a
 * test can park or kill a process exactly there and check that the next
 * locker repairs the pool; and a limit on the dirty-extent table, so a
 * test can make it run full.
 */
#ifndef L1ARENA_TEST_H
#define L1ARENA_TEST_H

#include "l1arena.h"

#define L1_HOOK_ALLOC_CLAIMED 1         /* bits claimed, records not written */
#define L1_HOOK_FREE_MID 2              /* half of a free batch retired */
#define L1_HOOK_ZERO_DONE 3             /* releasing a zeroed extent */
#define L1_HOOK_PUBLISH 4               /* key linked, state not yet set */
#define L1_HOOK_ZERO_ISSUE 5            /* engine thread, lock NOT held: about to
					 * write an extent */
#define L1_HOOK_ZERO_CLAIMED 6          /* engine thread, lock NOT held: claimed an
					 * extent (nobody else zeroes it), not yet
					 * written */
#define L1_HOOK_ZINLINE_STEP 7          /* a freeing thread, lock NOT held: handed
					 * back one step of what it zeroes */

void l1_test_set_hook(struct l1_arena *a, void (*hook)(struct l1_arena *a, int where));
/* This handle's frees use the dirty-extent table only while fewer than n of
 * its entries are in use (by anyone); beyond, records stay DIRTY. */
void l1_test_dirty_limit(struct l1_arena *a, uint64_t n);

#endif
