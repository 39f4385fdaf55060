/*
 * The namespace of each PFS, checked through the functions reads use:
 * from the root, every entry's inode must resolve through the inode index
 * (hammer2_inode_meta) and be of the entry's type, every directory must be
 * reached once (a second path is a loop or a hardlinked directory, which
 * a tree walk would never leave), and every symlink target must read back
 * valid.  What passes here, a full export reads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"
#include "hammer2_keymap.h"

#define DIR_DEPTH_MAX	2048		/* PATH_MAX of one-byte names */
#define PATH_BYTES	1024		/* shown; longer paths are cut */

struct names {
	hammer2_fsck_tree_t	*r;
	hammer2_pfs_t		*pfs;
	hammer2_keymap_t	seen;		/* directories reached */
	char			path[PATH_BYTES];
};

static void dir_check(struct names *nm, hammer2_tid_t dinum, size_t plen,
		      int depth);

static void
problem(struct names *nm, const char *what)
{
	hammer2_fsck_report(nm->r, "PFS %s: %s: %s", nm->pfs->info.label,
			    nm->path[0] ? nm->path : "/", what);
}

/* Add inum to the set; 1 if it was there, -1 out of memory. */
static int
seen_add(struct names *nm, hammer2_tid_t inum)
{
	if (hammer2_keymap_get(&nm->seen, inum, 0))
		return 1;
	return hammer2_keymap_put(&nm->seen, inum, 0, 1) ? -1 : 0;
}

static void
symlink_check(struct names *nm, hammer2_tid_t inum,
	      const hammer2_inode_meta_t *m, hammer2_off_t off)
{
	uint8_t buf[HAMMER2_SYMLINK_MAX];
	size_t done = 0;
	int error = 0;

	if (m->size <= HAMMER2_SYMLINK_MAX)
		error = hammer2_file_read(nm->pfs, inum, 0, buf,
					  (size_t)m->size, &done);
	if (error == 0)
		error = hammer2_symlink_validate(buf, (size_t)m->size);
	if (error)
		hammer2_preerr(error, "symlink inode 0x%llx at 0x%llx",
			       (unsigned long long)inum,
			       (unsigned long long)off);
	if (error)
		problem(nm, hammer2_errmsg());
}

static void
entry_check(struct names *nm, const hammer2_dirent_t *ent, size_t plen,
	    int depth)
{
	hammer2_inode_meta_t m;
	hammer2_blockref_t bref;
	hammer2_off_t off;
	int dup;

	if (hammer2_inode_meta(nm->pfs, ent->inum, &m, &bref)) {
		problem(nm, hammer2_errmsg());
		return;
	}
	off = bref.data_off & HAMMER2_OFF_MASK;
	if (m.type != ent->type) {
		hammer2_seterr(EINVAL, "entry of type %d names inode 0x%llx "
			       "(at 0x%llx) of type %d", ent->type,
			       (unsigned long long)ent->inum,
			       (unsigned long long)off, m.type);
		problem(nm, hammer2_errmsg());
	} else if (m.type == HAMMER2_OBJTYPE_DIRECTORY) {
		dup = seen_add(nm, ent->inum);
		if (dup)
			hammer2_seterr(dup < 0 ? ENOMEM : EINVAL, dup < 0 ?
				       "out of memory" : "directory inode 0x%llx "
				       "(at 0x%llx) reached by a second path (a "
				       "loop or a hardlinked directory)",
				       (unsigned long long)ent->inum,
				       (unsigned long long)off);
		else if (depth >= DIR_DEPTH_MAX)
			hammer2_seterr(EINVAL, "directories nested deeper than "
				       "%d", DIR_DEPTH_MAX);
		if (dup || depth >= DIR_DEPTH_MAX)
			problem(nm, hammer2_errmsg());
		else
			dir_check(nm, ent->inum, plen, depth + 1);
	} else if (m.type == HAMMER2_OBJTYPE_SOFTLINK) {
		symlink_check(nm, ent->inum, &m, off);
	}
}

static void
dir_check(struct names *nm, hammer2_tid_t dinum, size_t plen, int depth)
{
	hammer2_dirent_t *ents;
	size_t count, n;

	if (hammer2_dir_entries(nm->pfs, dinum, &ents, &count))
		problem(nm, hammer2_errmsg());
	for (size_t i = 0; i < count; ++i) {
		const hammer2_dirent_t *ent = &ents[i];

		n = plen + 1 + ent->namlen;
		if (n >= PATH_BYTES)
			n = PATH_BYTES - 1;
		nm->path[plen] = '/';
		memcpy(nm->path + plen + 1, ent->name, n - plen - 1);
		nm->path[n] = 0;
		entry_check(nm, ent, n, depth);
		nm->path[plen] = 0;
	}
	free(ents);
}

/* Every PFS of the volume as opened; problems go to r. */
void
hammer2_fsck_names(hammer2_dev_t *hmp, hammer2_fsck_tree_t *r)
{
	hammer2_pfs_info_t *infos;
	struct names nm;
	int count;

	if (hammer2_pfs_list(&hmp, 1, &infos, &count)) {
		hammer2_fsck_report(r, "PFS list: %s", hammer2_errmsg());
		return;
	}
	for (int i = 0; i < count; ++i) {
		memset(&nm, 0, sizeof(nm));
		nm.r = r;
		if (hammer2_pfs_open(&hmp, 1, infos[i].label, &nm.pfs)) {
			hammer2_fsck_report(r, "PFS %s: %s", infos[i].label,
					    hammer2_errmsg());
			continue;
		}
		if (seen_add(&nm, nm.pfs->info.inum) >= 0)
			dir_check(&nm, nm.pfs->info.inum, 0, 0);
		else
			problem(&nm, "out of memory");
		hammer2_keymap_free(&nm.seen, NULL);
		hammer2_pfs_close(nm.pfs);
	}
	free(infos);
}
