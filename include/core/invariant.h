/*
 * invariant: PIW_ASSERT(cond), a debug assertion on an invariant of a data
 * structure (after curl's DEBUGASSERT). Active in Debug builds, the ASan build
 * among them, where a broken invariant aborts naming the condition, file and
 * line. Compiled out where NDEBUG is defined (CMake's Release and
 * RelWithDebInfo): the condition is then type-checked but never evaluated, so
 * it must have no side effect. Not for input checks: untrusted input is an
 * error return, never an assertion.
 */
#ifndef PIW_INVARIANT_H
#define PIW_INVARIANT_H

#include <assert.h>

#ifdef NDEBUG
#define PIW_ASSERT(cond) ((void)sizeof((cond) ? 1 : 0))
#else
#define PIW_ASSERT(cond) assert(cond)
#endif

/*
 * PIW_ASSERT_CHECK(cond): the same for a condition that calls a checking
 * function which exists only for the assertion. That function is defined under
 * #ifndef NDEBUG, and the release build drops the condition unread (clang
 * refuses a static function named only in an unevaluated sizeof). It must not
 * allocate: the allocation-failure sweep counts allocations.
 */
#ifdef NDEBUG
#define PIW_ASSERT_CHECK(cond) ((void)0)
#else
#define PIW_ASSERT_CHECK(cond) assert(cond)
#endif

#endif
