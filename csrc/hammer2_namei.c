/*
 * Path resolution: an absolute path within a PFS to an inode number in one
 * call, each component through the validating directory lookup.  "." stays,
 * ".." goes to the inode's recorded parent (the root's own is none).
 */
#include <errno.h>
#include "hammer2.h"

int
hammer2_namei(hammer2_pfs_t *pfs, const char *path, size_t len,
	      hammer2_tid_t *inump)
{
	hammer2_inode_meta_t meta;
	hammer2_dirent_t ent;
	hammer2_tid_t inum = pfs->info.inum;
	const char *name;
	size_t i, n;
	int error;

	if (len == 0 || path[0] != '/')
		return hammer2_seterr(EINVAL, "PFS paths are absolute");
	for (i = 0; i < len; i += n) {
		while (i < len && path[i] == '/')
			++i;
		name = path + i;
		for (n = 0; i + n < len && name[n] != '/'; ++n)
			;
		if (n == 0 || (n == 1 && name[0] == '.'))
			continue;
		if (n == 2 && name[0] == '.' && name[1] == '.') {
			error = hammer2_inode_meta(pfs, inum, &meta, NULL);
			if (error)
				return error;
			if (meta.iparent)
				inum = meta.iparent;
			continue;
		}
		error = hammer2_dir_lookup(pfs, inum, (const uint8_t *)name, n,
					   &ent);
		if (error)
			return error;
		inum = ent.inum;
	}
	*inump = inum;
	return 0;
}
