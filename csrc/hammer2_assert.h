/*
 * pyh2: invariant assertions, kernel style.
 *
 * KKASSERT(exp) and KASSERT(exp, (fmt, ...)) are compiled in when
 * HAMMER2_INVARIANTS is defined (setup.py: the in-place, debug and
 * sanitizer builds, which tests and torture run) and out of the release
 * build, where exp is not evaluated at all: an assertion must have no
 * side effect the code relies on.  A failed one names the file, line and
 * expression on stderr and aborts, so a test run dies loudly at the spot
 * instead of corrupting a volume later.
 */
#ifndef HAMMER2_ASSERT_H_
#define HAMMER2_ASSERT_H_

#ifdef HAMMER2_INVARIANTS

#include <stdio.h>
#include <stdlib.h>

static inline void __attribute__((noreturn))
hammer2_panic(const char *file, int line, const char *exp, const char *msg)
{
	fprintf(stderr, "pyh2: assertion \"%s\" failed at %s:%d%s%s\n", exp,
		file, line, msg ? ": " : "", msg ? msg : "");
	abort();
}

#define KKASSERT(exp)							\
	do {								\
		if (__builtin_expect(!(exp), 0))			\
			hammer2_panic(__FILE__, __LINE__, #exp, NULL);	\
	} while (0)

/* msg is a parenthesized printf argument list, as in the kernel */
#define HAMMER2_PANIC_ARGS(...)	__VA_ARGS__
#define KASSERT(exp, msg)						\
	do {								\
		if (__builtin_expect(!(exp), 0)) {			\
			char _kmsg[256];				\
									\
			snprintf(_kmsg, sizeof(_kmsg),			\
				 HAMMER2_PANIC_ARGS msg);		\
			hammer2_panic(__FILE__, __LINE__, #exp, _kmsg);	\
		}							\
	} while (0)

#else

/* sizeof keeps exp type-checked (and its variables used), unevaluated */
#define KKASSERT(exp)		do { (void)sizeof(!(exp)); } while (0)
#define KASSERT(exp, msg)	do { (void)sizeof(!(exp)); } while (0)

#endif /* HAMMER2_INVARIANTS */

#endif /* HAMMER2_ASSERT_H_ */
