/*
 * HAMMER2 on-media format: structure layouts and constants.
 *
 * Every structure here is byte-exact with the media written by DragonFly's
 * HAMMER2 (little-endian hosts).  Sizes are asserted at the bottom so a
 * layout slip fails the build instead of corrupting an image.
 */
#ifndef HAMMER2_DISK_H_
#define HAMMER2_DISK_H_

#include <stdint.h>
#include <stddef.h>

typedef uint64_t hammer2_tid_t;
typedef uint64_t hammer2_off_t;
typedef uint64_t hammer2_key_t;
typedef uint32_t hammer2_crc32_t;

/* Allocation granularity: blocks are 2^10 .. 2^16 bytes. */
#define HAMMER2_RADIX_MIN		10
#define HAMMER2_RADIX_MAX		16
#define HAMMER2_ALLOC_MIN		(1 << HAMMER2_RADIX_MIN)
#define HAMMER2_PBUFRADIX		16
#define HAMMER2_PBUFSIZE		65536
#define HAMMER2_PBUFMASK		(HAMMER2_PBUFSIZE - 1)
#define HAMMER2_PBUFMASK64		((hammer2_off_t)HAMMER2_PBUFMASK)
#define HAMMER2_LBUFSIZE		16384

#define HAMMER2_SET_COUNT		4
#define HAMMER2_EMBEDDED_BYTES		512

/* data_off: low 6 bits hold the size radix, the rest the byte offset. */
#define HAMMER2_OFF_MASK		0xFFFFFFFFFFFFFFC0ULL
#define HAMMER2_OFF_MASK_RADIX		0x000000000000003FULL

/* Volume layout: a header copy at the start of each of the first 4 zones. */
#define HAMMER2_ZONE_BYTES64		(2ULL * 1024 * 1024 * 1024)
#define HAMMER2_ZONE_SEG		(4 * 1024 * 1024)
#define HAMMER2_NUM_VOLHDRS		4
#define HAMMER2_VOLUME_BYTES		65536
#define HAMMER2_VOLUME_ALIGN		(8 * 1024 * 1024)

/* Reserved 64 KiB slots inside each 4 MiB segment at every 1 GiB. */
#define HAMMER2_ZONE_VOLHDR		0
#define HAMMER2_ZONE_FREEMAP_00		1
#define HAMMER2_ZONE_FREEMAP_END	41
#define HAMMER2_ZONE_FREEMAP_INC	5
#define HAMMER2_NFREEMAPS		8
#define HAMMER2_ZONE_END		64

#define HAMMER2_FREEMAP_LEVEL6_RADIX	64
#define HAMMER2_FREEMAP_LEVEL5_RADIX	62
#define HAMMER2_FREEMAP_LEVEL4_RADIX	54
#define HAMMER2_FREEMAP_LEVEL3_RADIX	46
#define HAMMER2_FREEMAP_LEVEL2_RADIX	38
#define HAMMER2_FREEMAP_LEVEL1_RADIX	30
#define HAMMER2_FREEMAP_LEVEL0_RADIX	22
#define HAMMER2_FREEMAP_LEVELN_PSIZE	32768
#define HAMMER2_FREEMAP_BLOCK_RADIX	14
#define HAMMER2_FREEMAP_BLOCK_SIZE	(1 << HAMMER2_FREEMAP_BLOCK_RADIX)
#define HAMMER2_BMAP_ELEMENTS		8

#define HAMMER2_VOLUME_ID_HBO		0x48414d3205172011ULL
#define HAMMER2_VOLUME_ID_ABO		0x11201705324d4148ULL

/* Directory hash keys. */
#define HAMMER2_DIRHASH_VISIBLE		0x8000000000000000ULL
#define HAMMER2_DIRHASH_LOMASK		0x0000000000007FFFULL
#define HAMMER2_KEY_MAX			0xFFFFFFFFFFFFFFFFULL

#define HAMMER2_INODE_BYTES		1024
#define HAMMER2_INODE_MAXNAME		256
#define HAMMER2_INODE_START		1024
#define HAMMER2_BLOCKREF_BYTES		128

/* Blockref types (>= 128 are in-memory pseudo types). */
#define HAMMER2_BREF_TYPE_EMPTY		0
#define HAMMER2_BREF_TYPE_INODE		1
#define HAMMER2_BREF_TYPE_INDIRECT	2
#define HAMMER2_BREF_TYPE_DATA		3
#define HAMMER2_BREF_TYPE_DIRENT	4
#define HAMMER2_BREF_TYPE_FREEMAP_NODE	5
#define HAMMER2_BREF_TYPE_FREEMAP_LEAF	6
#define HAMMER2_BREF_TYPE_FREEMAP	254
#define HAMMER2_BREF_TYPE_VOLUME	255

#define HAMMER2_BREF_FLAG_PFSROOT	0x01

/* bref.methods: check algorithm in the high nibble, compression low. */
#define HAMMER2_DEC_CHECK(n)		(((n) >> 4) & 15)
#define HAMMER2_DEC_COMP(n)		((n) & 15)
#define HAMMER2_ENC_CHECK(n)		(((n) & 15) << 4)
#define HAMMER2_ENC_COMP(n)		((n) & 15)
#define HAMMER2_DEC_ALGO(n)		((n) & 15)

#define HAMMER2_CHECK_NONE		0
#define HAMMER2_CHECK_DISABLED		1
#define HAMMER2_CHECK_ISCSI32		2
#define HAMMER2_CHECK_XXHASH64		3
#define HAMMER2_CHECK_SHA192		4
#define HAMMER2_CHECK_FREEMAP		5

#define HAMMER2_COMP_NONE		0
#define HAMMER2_COMP_AUTOZERO		1
#define HAMMER2_COMP_LZ4		2
#define HAMMER2_COMP_ZLIB		3

#define HAMMER2_XXH_SEED		0x4d617474446c6c6eULL

/* Inode op_flags. */
#define HAMMER2_OPFLAG_DIRECTDATA	0x01
#define HAMMER2_OPFLAG_PFSROOT		0x02

#define HAMMER2_OBJTYPE_UNKNOWN		0
#define HAMMER2_OBJTYPE_DIRECTORY	1
#define HAMMER2_OBJTYPE_REGFILE		2
#define HAMMER2_OBJTYPE_FIFO		4
#define HAMMER2_OBJTYPE_CDEV		5
#define HAMMER2_OBJTYPE_BDEV		6
#define HAMMER2_OBJTYPE_SOFTLINK	7
#define HAMMER2_OBJTYPE_SOCKET		9
#define HAMMER2_OBJTYPE_WHITEOUT	10

#define HAMMER2_PFSTYPE_NONE		0x00
#define HAMMER2_PFSTYPE_CACHE		0x01
#define HAMMER2_PFSTYPE_SLAVE		0x03
#define HAMMER2_PFSTYPE_SOFT_SLAVE	0x04
#define HAMMER2_PFSTYPE_SOFT_MASTER	0x05
#define HAMMER2_PFSTYPE_MASTER		0x06
#define HAMMER2_PFSTYPE_SUPROOT		0x08
#define HAMMER2_PFSTYPE_DUMMY		0x09
#define HAMMER2_PFS_DEC(n)		((n) & 0x0F)

#define HAMMER2_PFSSUBTYPE_NONE		0
#define HAMMER2_PFSSUBTYPE_SNAPSHOT	1
#define HAMMER2_PFSSUBTYPE_AUTOSNAP	2

/* Volume header CRC coverage. */
#define HAMMER2_VOL_ICRC_SECT0		7
#define HAMMER2_VOL_ICRC_SECT1		6
#define HAMMER2_VOLUME_ICRC0_OFF	0
#define HAMMER2_VOLUME_ICRC0_SIZE	(512 - 4)
#define HAMMER2_VOLUME_ICRC1_OFF	512
#define HAMMER2_VOLUME_ICRC1_SIZE	512
#define HAMMER2_VOLUME_ICRCVH_SIZE	(65536 - 4)

#define HAMMER2_COPYID_COUNT		256
#define HAMMER2_MAX_VOLUMES		64

typedef struct hammer2_uuid {
	uint8_t		bytes[16];
} hammer2_uuid_t;

/* Directory entry header carried in a DIRENT blockref's embed area. */
typedef struct hammer2_dirent_head {
	hammer2_tid_t	inum;
	uint16_t	namlen;
	uint8_t		type;
	uint8_t		unused0b;
	uint8_t		unused0c[4];
} __attribute__((packed)) hammer2_dirent_head_t;

typedef struct hammer2_blockref {
	uint8_t		type;
	uint8_t		methods;
	uint8_t		copyid;
	uint8_t		keybits;
	uint8_t		vradix;
	uint8_t		flags;
	uint16_t	leaf_count;
	hammer2_key_t	key;
	hammer2_tid_t	mirror_tid;
	hammer2_tid_t	modify_tid;
	hammer2_off_t	data_off;
	hammer2_tid_t	update_tid;
	union {
		char			buf[16];
		hammer2_dirent_head_t	dirent;
		struct {
			hammer2_key_t	data_count;
			hammer2_key_t	inode_count;
		} stats;
	} embed;
	union {
		char		buf[64];
		struct {
			uint32_t value;
			uint32_t reserved[15];
		} iscsi32;
		struct {
			uint64_t value;
			uint64_t reserved[7];
		} xxhash64;
		struct {
			uint8_t data[24];
			uint8_t reserved[40];
		} sha192;
		struct {
			uint32_t icrc32;
			uint32_t bigmask;
			uint64_t avail;
			uint8_t reserved[48];
		} freemap;
	} check;
} __attribute__((packed)) hammer2_blockref_t;

typedef struct hammer2_blockset {
	hammer2_blockref_t blockref[HAMMER2_SET_COUNT];
} hammer2_blockset_t;

/* One 4 MiB segment of the level-1 freemap: 2 bits per 16 KiB block. */
typedef struct hammer2_bmap_data {
	int32_t		linear;
	uint16_t	class;
	uint8_t		reserved06;
	uint8_t		reserved07;
	uint32_t	reserved08[5];
	uint32_t	avail;
	uint32_t	reserved20[8];
	uint64_t	bitmapq[HAMMER2_BMAP_ELEMENTS];
} __attribute__((packed)) hammer2_bmap_data_t;

typedef struct hammer2_inode_meta {
	uint16_t	version;
	uint8_t		reserved02;
	uint8_t		pfs_subtype;
	uint32_t	uflags;
	uint32_t	rmajor;
	uint32_t	rminor;
	uint64_t	ctime;		/* all times: microseconds since epoch */
	uint64_t	mtime;
	uint64_t	atime;
	uint64_t	btime;
	hammer2_uuid_t	uid;
	hammer2_uuid_t	gid;
	uint8_t		type;
	uint8_t		op_flags;
	uint16_t	cap_flags;
	uint32_t	mode;
	hammer2_tid_t	inum;
	hammer2_off_t	size;
	uint64_t	nlinks;
	hammer2_tid_t	iparent;
	hammer2_key_t	name_key;
	uint16_t	name_len;
	uint8_t		ncopies;
	uint8_t		comp_algo;
	uint8_t		target_type;
	uint8_t		check_algo;
	uint8_t		pfs_nmasters;
	uint8_t		pfs_type;
	hammer2_tid_t	pfs_inum;
	hammer2_uuid_t	pfs_clid;
	hammer2_uuid_t	pfs_fsid;
	uint64_t	data_quota;
	uint64_t	unused_b8;
	uint64_t	inode_quota;
	uint64_t	unused_c8;
	hammer2_tid_t	pfs_lsnap_tid;
	hammer2_tid_t	reserved_d8;
	uint64_t	decrypt_check;
	uint64_t	reserved_e8[3];
} __attribute__((packed)) hammer2_inode_meta_t;

typedef struct hammer2_inode_data {
	hammer2_inode_meta_t	meta;
	uint8_t			filename[HAMMER2_INODE_MAXNAME];
	union {
		hammer2_blockset_t	blockset;
		uint8_t			data[HAMMER2_EMBEDDED_BYTES];
	} u;
} __attribute__((packed)) hammer2_inode_data_t;

typedef struct hammer2_volconf {
	uint8_t		copyid;
	uint8_t		inprog;
	uint8_t		chain_to;
	uint8_t		chain_from;
	uint16_t	flags;
	uint8_t		error;
	uint8_t		priority;
	uint8_t		remote_pfs_type;
	uint8_t		reserved08[23];
	hammer2_uuid_t	pfs_clid;
	uint8_t		label[16];
	uint8_t		path[64];
} __attribute__((packed)) hammer2_volconf_t;

typedef struct hammer2_volume_data {
	uint64_t	magic;
	hammer2_off_t	boot_beg;
	hammer2_off_t	boot_end;
	hammer2_off_t	aux_beg;
	hammer2_off_t	aux_end;
	hammer2_off_t	volu_size;
	uint32_t	version;
	uint32_t	flags;
	uint8_t		copyid;
	uint8_t		freemap_version;
	uint8_t		peer_type;
	uint8_t		volu_id;
	uint8_t		nvolumes;
	uint8_t		reserved03d;
	uint16_t	reserved03e;
	hammer2_uuid_t	fsid;
	hammer2_uuid_t	fstype;
	hammer2_off_t	allocator_size;
	hammer2_off_t	allocator_free;
	hammer2_off_t	allocator_beg;
	hammer2_tid_t	mirror_tid;
	hammer2_tid_t	reserved080;
	hammer2_tid_t	reserved088;
	hammer2_tid_t	freemap_tid;
	hammer2_tid_t	bulkfree_tid;
	hammer2_tid_t	reserved0a0[4];
	hammer2_off_t	total_size;
	uint32_t	copyexists[8];
	uint8_t		reserved0e8[248];
	hammer2_crc32_t	icrc_sects[8];		/* 0x1E0: per-sector CRCs */
	hammer2_blockset_t sroot_blockset;	/* 0x200: super-root */
	uint8_t		sector2[512];
	uint8_t		sector3[512];
	hammer2_blockset_t freemap_blockset;	/* 0x800: freemap root */
	uint8_t		sector5[512];
	uint8_t		sector6[512];
	hammer2_off_t	volu_loff[HAMMER2_MAX_VOLUMES];
	hammer2_volconf_t copyinfo[HAMMER2_COPYID_COUNT];
	uint8_t		reserved9000[0x6FFC];
	hammer2_crc32_t	icrc_volheader;		/* 0xFFFC: whole-header CRC */
} __attribute__((packed)) hammer2_volume_data_t;

typedef union hammer2_media_data {
	hammer2_volume_data_t	voldata;
	hammer2_inode_data_t	ipdata;
	hammer2_blockset_t	blkset;
	hammer2_blockref_t	npdata[HAMMER2_PBUFSIZE / HAMMER2_BLOCKREF_BYTES];
	hammer2_bmap_data_t	bmdata[HAMMER2_FREEMAP_LEVELN_PSIZE /
				       sizeof(hammer2_bmap_data_t)];
	uint8_t			buf[HAMMER2_PBUFSIZE];
} hammer2_media_data_t;

_Static_assert(sizeof(hammer2_dirent_head_t) == 16, "dirent head");
_Static_assert(sizeof(hammer2_blockref_t) == 128, "blockref");
_Static_assert(sizeof(hammer2_bmap_data_t) == 128, "bmap_data");
_Static_assert(sizeof(hammer2_inode_meta_t) == 256, "inode meta");
_Static_assert(sizeof(hammer2_inode_data_t) == 1024, "inode");
_Static_assert(sizeof(hammer2_volconf_t) == 128, "volconf");
_Static_assert(sizeof(hammer2_volume_data_t) == 65536, "volume header");
_Static_assert(offsetof(hammer2_volume_data_t, icrc_sects) == 0x1E0, "icrc");
_Static_assert(offsetof(hammer2_volume_data_t, sroot_blockset) == 0x200, "sroot");
_Static_assert(offsetof(hammer2_volume_data_t, freemap_blockset) == 0x800, "fmap");
_Static_assert(offsetof(hammer2_volume_data_t, copyinfo) == 0x1000, "copyinfo");
_Static_assert(offsetof(hammer2_inode_meta_t, pfs_clid) == 0x90, "pfs_clid");

#endif /* HAMMER2_DISK_H_ */
