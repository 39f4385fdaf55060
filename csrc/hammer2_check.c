/*
 * Check codes (iSCSI CRC32C, xxhash64, sha192, freemap CRC) and the
 * directory hash.  CRC32C uses the SSE4.2 instruction when the CPU has it.
 */
#include <errno.h>
#include <string.h>
#include <openssl/sha.h>
#include <xxhash.h>
#include "hammer2.h"

static uint32_t crc32c_table[256];
static int crc32c_hw;

__attribute__((constructor)) static void
crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; ++i) {
		uint32_t c = i;

		for (int k = 0; k < 8; ++k)
			c = (c >> 1) ^ ((c & 1) ? 0x82F63B78U : 0);
		crc32c_table[i] = c;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc32c_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;

	while (n >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	while (n--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

uint32_t
hammer2_icrc32(const void *buf, size_t size)
{
	const uint8_t *p = buf;
	uint32_t crc = 0xFFFFFFFFU;

#if defined(__x86_64__)
	if (crc32c_hw)
		return ~crc32c_sse42(crc, p, size);
#endif
	while (size--)
		crc = crc32c_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

/*
 * Directory hash: the top 32 bits sum the CRCs of the name's fields (split
 * at . - _ ~) with bit 63 forced on; bits 16-31 mix the CRC of the whole
 * name; bit 15 is always set; the low 15 bits are left for collisions.
 */
hammer2_key_t
hammer2_dirhash(const uint8_t *name, size_t len)
{
	hammer2_key_t key;
	uint32_t crcx = 0;
	size_t i, j;

	for (i = j = 0; i < len; ++i) {
		if (name[i] == '.' || name[i] == '-' || name[i] == '_' ||
		    name[i] == '~') {
			if (i != j)
				crcx += hammer2_icrc32(name + j, i - j);
			j = i + 1;
		}
	}
	if (i != j)
		crcx += hammer2_icrc32(name + j, i - j);
	key = (hammer2_key_t)(crcx | 0x80000000U) << 32;
	crcx = hammer2_icrc32(name, len);
	crcx ^= crcx << 16;
	key |= crcx & 0xFFFF0000U;
	key |= 0x8000U;
	return key;
}

const char *
hammer2_check_name(int check)
{
	static const char *names[] = {
		"none", "disabled", "crc32", "xxhash64", "sha192", "freemap"
	};

	return (check >= 0 && check < 6) ? names[check] : "unknown";
}

const char *
hammer2_comp_name(int comp)
{
	static const char *names[] = { "none", "autozero", "lz4", "zlib" };

	return (comp >= 0 && comp < 4) ? names[comp] : "unknown";
}

const char *
hammer2_bref_type_name(int type)
{
	switch (type) {
	case HAMMER2_BREF_TYPE_EMPTY:		return "empty";
	case HAMMER2_BREF_TYPE_INODE:		return "inode";
	case HAMMER2_BREF_TYPE_INDIRECT:	return "indirect";
	case HAMMER2_BREF_TYPE_DATA:		return "data";
	case HAMMER2_BREF_TYPE_DIRENT:		return "dirent";
	case HAMMER2_BREF_TYPE_FREEMAP_NODE:	return "freemap_node";
	case HAMMER2_BREF_TYPE_FREEMAP_LEAF:	return "freemap_leaf";
	case HAMMER2_BREF_TYPE_FREEMAP:		return "freemap";
	case HAMMER2_BREF_TYPE_VOLUME:		return "volume";
	default:				return "invalid";
	}
}

/* sha192 is SHA-256 with the last 64 bits folded into the third word. */
static void
sha192(const void *data, size_t bytes, uint8_t out[24])
{
	uint64_t d[4];

	SHA256(data, bytes, (unsigned char *)d);
	d[2] ^= d[3];
	memcpy(out, d, 24);
}

/* Compute and store the blockref's check code (and algorithm) for data. */
void
hammer2_check_set(hammer2_blockref_t *bref, int check, const void *data,
		  size_t bytes)
{
	memset(&bref->check, 0, sizeof(bref->check));
	bref->methods = (uint8_t)((bref->methods & 0x0F) | HAMMER2_ENC_CHECK(check));
	switch (check) {
	case HAMMER2_CHECK_ISCSI32:
		bref->check.iscsi32.value = hammer2_icrc32(data, bytes);
		break;
	case HAMMER2_CHECK_XXHASH64:
		bref->check.xxhash64.value = XXH64(data, bytes, HAMMER2_XXH_SEED);
		break;
	case HAMMER2_CHECK_SHA192:
		sha192(data, bytes, bref->check.sha192.data);
		break;
	case HAMMER2_CHECK_FREEMAP:
		bref->check.freemap.icrc32 = hammer2_icrc32(data, bytes);
		break;
	default:
		break;
	}
}

/*
 * Verify the media bytes a blockref points to.  Returns 0 or EIO with the
 * algorithm named in the error message.
 */
int
hammer2_check_verify(const hammer2_blockref_t *bref, const void *data,
		     size_t bytes)
{
	int check = HAMMER2_DEC_CHECK(bref->methods);
	uint8_t digest[24];
	int ok;

	switch (check) {
	case HAMMER2_CHECK_NONE:
	case HAMMER2_CHECK_DISABLED:
		return 0;
	case HAMMER2_CHECK_ISCSI32:
		ok = bref->check.iscsi32.value == hammer2_icrc32(data, bytes);
		break;
	case HAMMER2_CHECK_XXHASH64:
		ok = bref->check.xxhash64.value ==
		     XXH64(data, bytes, HAMMER2_XXH_SEED);
		break;
	case HAMMER2_CHECK_SHA192:
		sha192(data, bytes, digest);
		ok = memcmp(digest, bref->check.sha192.data, 24) == 0;
		break;
	case HAMMER2_CHECK_FREEMAP:
		ok = bref->check.freemap.icrc32 == hammer2_icrc32(data, bytes);
		break;
	default:
		return hammer2_seterr(EIO, "unknown check algorithm %d", check);
	}
	if (ok)
		return 0;
	return hammer2_seterr(EIO, "%s check mismatch", hammer2_check_name(check));
}
