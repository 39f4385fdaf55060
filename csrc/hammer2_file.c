/*
 * File reads.  Small files live in the inode (embedded data); larger ones
 * in DATA blocks keyed by their logical offset, each covering 2^keybits
 * bytes (64 KiB), possibly compressed and shorter on media.  Missing
 * blocks are holes and read as zeros.
 */
#include <errno.h>
#include <string.h>
#include "hammer2.h"

#define SHARED	(HAMMER2_LOOKUP_SHARED)

struct read_ctx {
	int		comp;
	hammer2_off_t	lbase;		/* logical offset of the block */
	size_t		lsize;		/* logical block size */
	hammer2_off_t	off;		/* request window */
	uint8_t		*buf;
	size_t		len;
	int		error;
};

/* Copy the block's part of the window, decoding straight into the
 * caller's buffer when the whole block fits there. */
static void
read_block_cb(void *arg, const void *data, int bytes, int error)
{
	struct read_ctx *ctx = arg;
	hammer2_off_t wbeg = ctx->lbase > ctx->off ? ctx->lbase : ctx->off;
	hammer2_off_t lend = ctx->lbase + ctx->lsize;
	hammer2_off_t wend = ctx->off + ctx->len;
	uint8_t tmp[HAMMER2_PBUFSIZE];
	uint8_t *dst;
	size_t out;

	if (lend < wend)
		wend = lend;
	ctx->error = error;
	if (error)
		return;
	if (data == NULL) {
		memset(ctx->buf + (wbeg - ctx->off), 0, wend - wbeg);
		return;
	}
	dst = (ctx->lbase >= ctx->off && lend <= ctx->off + ctx->len) ?
	      ctx->buf + (ctx->lbase - ctx->off) : tmp;
	ctx->error = hammer2_decompress(ctx->comp, data, (size_t)bytes, dst,
					ctx->lsize, &out);
	if (ctx->error)
		return;
	if (out < ctx->lsize)
		memset(dst + out, 0, ctx->lsize - out);
	if (dst == tmp)
		memcpy(ctx->buf + (wbeg - ctx->off), tmp + (wbeg - ctx->lbase),
		       wend - wbeg);
}

/* A file's element must be a DATA block, aligned to its own size. */
static int
data_bref_check(const hammer2_blockref_t *bref)
{
	if (bref->type != HAMMER2_BREF_TYPE_DATA ||
	    bref->keybits < HAMMER2_RADIX_MIN ||
	    bref->keybits > HAMMER2_RADIX_MAX ||
	    (bref->key & ((1ULL << bref->keybits) - 1)))
		return hammer2_seterr(EINVAL, "unexpected %s blockref (key "
				      "0x%llx, keybits %d) in file data",
				      hammer2_bref_type_name(bref->type),
				      (unsigned long long)bref->key,
				      bref->keybits);
	return 0;
}

/* The window's blocks, but for those read directly (d, when not NULL). */
static int
read_blocks(hammer2_cluster_t *ip, hammer2_off_t off,
	    uint8_t *buf, size_t len, const hammer2_direct_t *d)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_off_t pos = off;
	hammer2_off_t end = off + len;
	hammer2_key_t next;
	int error = 0;

	cparent = hammer2_cluster_lookup_init(ip, SHARED);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, off & ~HAMMER2_PBUFMASK64,
					 end - 1, SHARED | HAMMER2_LOOKUP_NODATA);
	while (cluster) {
		const hammer2_blockref_t *bref = hammer2_cluster_bref(cluster);
		struct read_ctx ctx;

		if ((error = data_bref_check(bref)) != 0)
			break;
		ctx = (struct read_ctx){
			.comp = HAMMER2_DEC_COMP(bref->methods),
			.lbase = bref->key, .lsize = 1UL << bref->keybits,
			.off = off, .buf = buf, .len = len,
		};
		if (ctx.lbase > pos)
			memset(buf + (pos - off), 0, ctx.lbase - pos);
		if (d == NULL || !hammer2_direct_chosen(d, ctx.lbase))
			hammer2_cluster_load_async(cluster, read_block_cb, &ctx);
		if (ctx.error) {
			error = hammer2_preerr(ctx.error, "offset 0x%llx",
					       (unsigned long long)ctx.lbase);
			break;
		}
		if (ctx.lbase + ctx.lsize > pos)
			pos = ctx.lbase + ctx.lsize;
		cluster = hammer2_cluster_next(cparent, cluster, &next, pos,
					       end - 1,
					       SHARED | HAMMER2_LOOKUP_NODATA);
	}
	error = hammer2_cluster_scan_done(cparent, cluster, error);
	if (error == 0 && pos < end)
		memset(buf + (pos - off), 0, end - pos);
	return error;
}

/*
 * A window of data blocks: a large one partly straight from the device
 * (hammer2_file_direct.c), the rest, or a small one, through the DIO
 * cache with read-ahead.
 */
static int
read_window(hammer2_cluster_t *ip, hammer2_off_t off, uint8_t *buf,
	    size_t len)
{
	hammer2_direct_t *d = hammer2_direct_start(ip, off, buf, len);
	hammer2_off_t lbase;
	int error;

	hammer2_file_readahead(ip, off, len, d);
	error = read_blocks(ip, off, buf, len, d);
	if (d == NULL)
		return error;
	hammer2_direct_wait(d);
	/* a block whose direct read failed: again, with failover */
	while (error == 0 && hammer2_direct_next_failed(d, &lbase))
		error = read_blocks(ip, lbase, buf + (lbase - off),
				    HAMMER2_PBUFSIZE, NULL);
	hammer2_direct_free(d);
	return error;
}

/* The read, through one node (flags HAMMER2_LOOKUP_FOCUS) or all. */
static int
file_read(hammer2_pfs_t *pfs, hammer2_tid_t inum, hammer2_off_t off,
	  void *buf, size_t len, size_t *donep, int flags)
{
	const hammer2_inode_data_t *ipdata;
	hammer2_cluster_t *ip;
	hammer2_off_t size;
	int error;

	*donep = 0;
	error = hammer2_inode_lookup(pfs, inum, flags, &ip);
	if (error)
		return error;
	ipdata = &hammer2_cluster_rdata(ip)->ipdata;
	size = ipdata->meta.size;
	if (ipdata->meta.type == HAMMER2_OBJTYPE_DIRECTORY) {
		hammer2_cluster_drop(ip);
		return hammer2_seterr(EISDIR, "inode 0x%llx is a directory",
				      (unsigned long long)inum);
	}
	if (off >= size || len == 0) {
		hammer2_cluster_drop(ip);
		return 0;
	}
	if (len > size - off)
		len = (size_t)(size - off);
	if (ipdata->meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA) {
		if (size > HAMMER2_EMBEDDED_BYTES)
			error = hammer2_seterr(EINVAL, "embedded data of %llu "
					       "bytes exceeds %d",
					       (unsigned long long)size,
					       HAMMER2_EMBEDDED_BYTES);
		else
			memcpy(buf, ipdata->u.data + off, len);
	} else {
		error = read_window(ip, off, buf, len);
	}
	hammer2_cluster_drop(ip);
	if (error)
		return hammer2_preerr(error, "inode 0x%llx",
				      (unsigned long long)inum);
	*donep = len;
	return 0;
}

/*
 * Read up to len bytes at off; *donep is short only at end of file.
 * Through the quickest live node, and only on a failure there through
 * every node (which heals it).
 */
int
hammer2_file_read(hammer2_pfs_t *pfs, hammer2_tid_t inum, hammer2_off_t off,
		  void *buf, size_t len, size_t *donep)
{
	int error = file_read(pfs, inum, off, buf, len, donep,
			      HAMMER2_LOOKUP_FOCUS);

	if (hammer2_focus_retry(pfs, error))
		error = file_read(pfs, inum, off, buf, len, donep, 0);
	return error;
}

/* The next data offset, through one node (flags HAMMER2_LOOKUP_FOCUS) or all. */
static int
file_next_data(hammer2_pfs_t *pfs, hammer2_tid_t inum, hammer2_off_t off,
	       hammer2_off_t *datap, int flags)
{
	const hammer2_inode_meta_t *meta;
	const hammer2_blockref_t *bref;
	hammer2_cluster_t *ip, *cparent, *cluster;
	hammer2_key_t next;
	int error;

	if ((error = hammer2_inode_lookup(pfs, inum, flags, &ip)) != 0)
		return error;
	meta = &hammer2_cluster_rdata(ip)->ipdata.meta;
	*datap = meta->size;
	if (meta->type == HAMMER2_OBJTYPE_DIRECTORY) {
		error = hammer2_seterr(EISDIR, "inode 0x%llx is a directory",
				       (unsigned long long)inum);
	} else if (off >= meta->size) {
		/* nothing follows */
	} else if (meta->op_flags & HAMMER2_OPFLAG_DIRECTDATA) {
		if (off < HAMMER2_EMBEDDED_BYTES)
			*datap = off;
	} else if ((cparent = hammer2_cluster_lookup_init(ip, SHARED)) == NULL) {
		error = hammer2_seterr(ENOMEM, "out of memory");
	} else {
		cluster = hammer2_cluster_lookup(cparent, &next,
						 off & ~HAMMER2_PBUFMASK64,
						 meta->size - 1,
						 SHARED | HAMMER2_LOOKUP_NODATA);
		if (cluster) {
			bref = hammer2_cluster_bref(cluster);
			error = data_bref_check(bref);
			if (error == 0 && bref->key > off)
				*datap = bref->key;
			else if (error == 0)
				*datap = off;
		}
		error = hammer2_cluster_scan_done(cparent, cluster, error);
	}
	hammer2_cluster_drop(ip);
	if (error)
		return hammer2_preerr(error, "inode 0x%llx",
				      (unsigned long long)inum);
	return 0;
}

/*
 * The first offset at or after off that data blocks cover, as SEEK_DATA
 * finds it; the file size when only holes follow.  A copy skips holes in
 * one step however large the size an inode claims.  Through one node, as
 * hammer2_file_read.
 */
int
hammer2_file_next_data(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		       hammer2_off_t off, hammer2_off_t *datap)
{
	int error = file_next_data(pfs, inum, off, datap, HAMMER2_LOOKUP_FOCUS);

	if (hammer2_focus_retry(pfs, error))
		error = file_next_data(pfs, inum, off, datap, 0);
	return error;
}

/*
 * A symlink's target into buf (HAMMER2_SYMLINK_MAX + 1 bytes), NUL
 * terminated.  Its size and bytes come from media: bounded and checked
 * before they reach the host.
 */
int
hammer2_file_readlink(hammer2_pfs_t *pfs, hammer2_tid_t inum, char *buf,
		      size_t *lenp)
{
	hammer2_inode_meta_t m;
	int error;

	*lenp = 0;
	buf[0] = 0;
	if ((error = hammer2_inode_meta(pfs, inum, &m, NULL)) != 0)
		return error;
	if (m.type != HAMMER2_OBJTYPE_SOFTLINK)
		return hammer2_seterr(EINVAL, "inode 0x%llx is not a symlink",
				      (unsigned long long)inum);
	if (m.size > HAMMER2_SYMLINK_MAX)
		return hammer2_seterr(ENAMETOOLONG, "inode 0x%llx: symlink "
				      "target of %llu bytes (at most %d)",
				      (unsigned long long)inum,
				      (unsigned long long)m.size,
				      HAMMER2_SYMLINK_MAX);
	error = hammer2_file_read(pfs, inum, 0, buf, (size_t)m.size, lenp);
	if (error == 0 && (error = hammer2_symlink_validate((const uint8_t *)buf,
							    *lenp)) != 0)
		error = hammer2_preerr(error, "inode 0x%llx",
				       (unsigned long long)inum);
	if (error) {
		*lenp = 0;
		return error;
	}
	buf[*lenp] = 0;
	return 0;
}
