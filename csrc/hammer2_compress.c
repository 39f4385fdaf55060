/*
 * Block decompression.  An LZ4 block is a 32-bit compressed length
 * followed by the raw LZ4 stream; a zlib block is a complete zlib stream.
 */
#include <errno.h>
#include <string.h>
#include <lz4.h>
#include <zlib.h>
#include "hammer2.h"

static int
decompress_lz4(const uint8_t *src, size_t srcsize, void *dst, size_t dstsize,
	       size_t *outsize)
{
	int32_t clen;
	int n;

	if (srcsize < sizeof(clen))
		return hammer2_seterr(EIO, "lz4 block shorter than its header");
	memcpy(&clen, src, sizeof(clen));
	if (clen <= 0 || (size_t)clen > srcsize - sizeof(clen))
		return hammer2_seterr(EIO, "lz4 block length %d out of range "
				      "(block is %zu bytes)", clen, srcsize);
	n = LZ4_decompress_safe((const char *)src + sizeof(clen), dst, clen,
				(int)dstsize);
	if (n < 0)
		return hammer2_seterr(EIO, "lz4 stream corrupt");
	*outsize = (size_t)n;
	return 0;
}

static int
decompress_zlib(const uint8_t *src, size_t srcsize, void *dst, size_t dstsize,
		size_t *outsize)
{
	z_stream zs;
	int rc;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit(&zs) != Z_OK)
		return hammer2_seterr(ENOMEM, "zlib init failed");
	zs.next_in = (Bytef *)src;
	zs.avail_in = (uInt)srcsize;
	zs.next_out = dst;
	zs.avail_out = (uInt)dstsize;
	rc = inflate(&zs, Z_FINISH);
	*outsize = dstsize - zs.avail_out;
	inflateEnd(&zs);
	/* A full output buffer ends the block even without the stream end. */
	if (rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && zs.avail_out == 0))
		return hammer2_seterr(EIO, "zlib stream corrupt (%d)", rc);
	return 0;
}

int
hammer2_decompress(int comp, const void *src, size_t srcsize, void *dst,
		   size_t dstsize, size_t *outsize)
{
	switch (comp) {
	case HAMMER2_COMP_NONE:
	case HAMMER2_COMP_AUTOZERO:
		*outsize = srcsize < dstsize ? srcsize : dstsize;
		memcpy(dst, src, *outsize);
		return 0;
	case HAMMER2_COMP_LZ4:
		return decompress_lz4(src, srcsize, dst, dstsize, outsize);
	case HAMMER2_COMP_ZLIB:
		return decompress_zlib(src, srcsize, dst, dstsize, outsize);
	default:
		return hammer2_seterr(EIO, "unknown compression %d", comp);
	}
}
