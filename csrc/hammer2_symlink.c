/*
 * Symlink targets read from media: a host gets them through readlink and
 * symlink(2), so they must be what those take: not empty, at most
 * HAMMER2_SYMLINK_MAX bytes, no NUL.  Shared by fsck and the read side.
 */
#include <errno.h>
#include <string.h>
#include "hammer2.h"

int
hammer2_symlink_validate(const uint8_t *target, size_t len)
{
	if (len == 0 || len > HAMMER2_SYMLINK_MAX)
		return hammer2_seterr(EINVAL, "symlink target of %zu bytes "
				      "(1..%d allowed)", len,
				      HAMMER2_SYMLINK_MAX);
	if (memchr(target, 0, len) != NULL)
		return hammer2_seterr(EINVAL, "symlink target holds a NUL "
				      "byte");
	return 0;
}
