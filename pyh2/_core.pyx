# cython: language_level=3, boundscheck=False, wraparound=False
"""Thin binding of the C core: every call into C releases the GIL, every
error becomes an H2Error (CheckError for a check-code mismatch) carrying
the errno and the core's message, which names the object and offset."""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset
import errno as _errno
import weakref as _weakref

cdef extern from "hammer2.h" nogil:
    ctypedef uint64_t hammer2_key_t
    ctypedef uint64_t hammer2_tid_t
    ctypedef uint64_t hammer2_off_t

    ctypedef struct hammer2_uuid_t:
        uint8_t bytes[16]

    ctypedef struct hammer2_dirent_head_t:
        uint64_t inum
        uint16_t namlen
        uint8_t type

    ctypedef struct _embed_stats:
        uint64_t data_count
        uint64_t inode_count

    ctypedef union _embed:
        hammer2_dirent_head_t dirent
        _embed_stats stats

    ctypedef struct hammer2_blockref_t:
        uint8_t type
        uint8_t methods
        uint8_t copyid
        uint8_t keybits
        uint8_t vradix
        uint8_t flags
        uint16_t leaf_count
        uint64_t key
        uint64_t mirror_tid
        uint64_t modify_tid
        uint64_t data_off
        uint64_t update_tid
        _embed embed

    ctypedef struct hammer2_bmap_data_t:
        int linear
        uint16_t class_ "class"
        uint32_t avail
        uint64_t bitmapq[8]

    ctypedef struct hammer2_inode_meta_t:
        uint16_t version
        uint8_t pfs_subtype
        uint32_t uflags
        uint32_t rmajor
        uint32_t rminor
        uint64_t ctime
        uint64_t mtime
        uint64_t atime
        uint64_t btime
        hammer2_uuid_t uid
        hammer2_uuid_t gid
        uint8_t type
        uint8_t op_flags
        uint16_t cap_flags
        uint32_t mode
        uint64_t inum
        uint64_t size
        uint64_t nlinks
        uint64_t iparent
        uint64_t name_key
        uint16_t name_len
        uint8_t ncopies
        uint8_t comp_algo
        uint8_t target_type
        uint8_t check_algo
        uint8_t pfs_nmasters
        uint8_t pfs_type
        uint64_t pfs_inum
        hammer2_uuid_t pfs_clid
        hammer2_uuid_t pfs_fsid
        uint64_t pfs_lsnap_tid

    ctypedef struct hammer2_volhdr_info_t:
        int present
        int valid
        char error[96]
        uint64_t mirror_tid
        uint64_t freemap_tid
        uint64_t volu_size
        uint64_t total_size
        uint64_t allocator_size
        uint64_t allocator_free
        uint32_t version

    ctypedef struct hammer2_volume_data_t:
        uint64_t magic
        uint64_t boot_beg
        uint64_t boot_end
        uint64_t aux_beg
        uint64_t aux_end
        uint64_t volu_size
        uint32_t version
        uint32_t flags
        uint8_t copyid
        uint8_t freemap_version
        uint8_t peer_type
        uint8_t volu_id
        uint8_t nvolumes
        hammer2_uuid_t fsid
        hammer2_uuid_t fstype
        uint64_t allocator_size
        uint64_t allocator_free
        uint64_t allocator_beg
        uint64_t mirror_tid
        uint64_t freemap_tid
        uint64_t bulkfree_tid
        uint64_t total_size
        uint32_t icrc_sects[8]
        uint64_t volu_loff[64]
        uint32_t icrc_volheader

    ctypedef struct hammer2_volume_t:
        char *path

    ctypedef struct hammer2_dev_t:
        hammer2_volume_t vols[64]
        int nvols
        char *path
        int readonly
        uint64_t size
        int volhdrno
        hammer2_volhdr_info_t vh[4]
        char *warnings

    ctypedef struct hammer2_pfs_info_t:
        char label[257]
        uint8_t pfs_type
        uint8_t pfs_subtype
        uint8_t pfs_nmasters
        hammer2_uuid_t pfs_clid
        hammer2_uuid_t pfs_fsid
        uint64_t inum
        uint64_t name_key

    ctypedef struct hammer2_pfs_t:
        hammer2_pfs_info_t info
        hammer2_dev_t *devs[8]
        int ndevs

    ctypedef struct hammer2_dirent_t:
        uint64_t inum
        uint64_t key
        uint8_t type
        uint16_t namlen
        uint8_t name[256]

    ctypedef struct hammer2_walk_stats_t:
        uint64_t total
        uint64_t inode
        uint64_t indirect
        uint64_t data
        uint64_t dirent
        uint64_t freemap_node
        uint64_t freemap_leaf
        uint64_t bytes
        uint64_t errors

    ctypedef int (*hammer2_readdir_cb_t)(void *arg, const hammer2_dirent_t *ent)
    ctypedef int (*hammer2_walk_cb_t)(void *arg, int depth,
                                      const hammer2_blockref_t *bref,
                                      const void *data, int bytes, int error)

    const char *hammer2_errmsg()
    int hammer2_check_verify(const hammer2_blockref_t *bref, const void *data,
                             size_t bytes)
    void hammer2_check_set(hammer2_blockref_t *bref, int check, const void *data,
                           size_t bytes)
    uint32_t hammer2_icrc32(const void *buf, size_t size)
    enum: HAMMER2_VOL_ICRC_SECT0, HAMMER2_VOL_ICRC_SECT1, HAMMER2_VOLUME_ICRC0_SIZE
    enum: HAMMER2_VOLUME_ICRC1_OFF, HAMMER2_VOLUME_ICRC1_SIZE, HAMMER2_VOLUME_ICRCVH_SIZE
    int hammer2_volset_header_copy(hammer2_dev_t *hmp, int id, int zone,
                                   hammer2_volume_data_t *vd, const char **why)
    enum: HAMMER2_CHECK_FREEMAP
    int hammer2_decompress(int comp, const void *src, size_t srcsize,
                           void *dst, size_t dstsize, size_t *outsize)
    const char *hammer2_bref_type_name(int type)
    const char *hammer2_check_name(int check)
    const char *hammer2_comp_name(int comp)
    hammer2_key_t hammer2_dirhash(const uint8_t *name, size_t len)
    enum: HAMMER2_MAX_VOLUMES
    int hammer2_dev_open(const char *const *paths, int npaths, int flags,
                         hammer2_dev_t **hmpp)
    void hammer2_dev_close(hammer2_dev_t *hmp)
    ctypedef struct hammer2_fault_t:
        int kind
        uint64_t after
        uint32_t ppm
        uint64_t limit
        uint64_t seed
        uint32_t delay_ms
    ctypedef struct hammer2_devrec_ent_t:
        int op
        int vol
        uint64_t off
        size_t bytes
        uint8_t *data
    uint64_t hammer2_dev_fault(hammer2_dev_t *hmp, const hammer2_fault_t *fault)
    uint64_t hammer2_dev_faults_injected(hammer2_dev_t *hmp)
    void hammer2_dev_record(hammer2_dev_t *hmp, int on)
    hammer2_devrec_ent_t *hammer2_dev_record_take(hammer2_dev_t *hmp, size_t *countp,
                                                  int *overflowp)
    void hammer2_devrec_free(hammer2_devrec_ent_t *ents, size_t count)
    int hammer2_pfs_list(hammer2_dev_t **devs, int ndevs,
                         hammer2_pfs_info_t **infop, int *countp)
    int hammer2_pfs_open(hammer2_dev_t **devs, int ndevs, const char *label,
                         hammer2_pfs_t **pfsp)
    void hammer2_pfs_close(hammer2_pfs_t *pfs)
    int hammer2_inode_meta(hammer2_pfs_t *pfs, hammer2_tid_t inum,
                           hammer2_inode_meta_t *meta, hammer2_blockref_t *bref)
    uint64_t hammer2_inode_data_bytes(const hammer2_inode_meta_t *meta,
                                      const hammer2_blockref_t *bref)
    int hammer2_dir_lookup(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
                           const uint8_t *name, size_t len, hammer2_dirent_t *ent)
    int hammer2_dir_readdir(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
                            hammer2_readdir_cb_t cb, void *arg)
    int hammer2_file_read(hammer2_pfs_t *pfs, hammer2_tid_t inum,
                          hammer2_off_t off, void *buf, size_t len, size_t *donep)
    int hammer2_file_next_data(hammer2_pfs_t *pfs, hammer2_tid_t inum,
                               hammer2_off_t off, hammer2_off_t *datap)
    int hammer2_file_readlink(hammer2_pfs_t *pfs, hammer2_tid_t inum, char *buf,
                              size_t *lenp)
    int hammer2_symlink_validate(const uint8_t *target, size_t len)
    enum: HAMMER2_SYMLINK_MAX
    enum: HAMMER2_NUM_VOLHDRS
    ctypedef struct hammer2_attr_t:
        int mask
        uint8_t type
        uint32_t mode
        uint32_t uid
        uint32_t gid
        uint64_t atime
        uint64_t mtime
        uint64_t ctime
        uint32_t rmajor
        uint32_t rminor

    ctypedef struct hammer2_newfs_t:
        const char *label
        int nvolhdrs
        int comp
        int check
        int nmasters
        const hammer2_uuid_t *clid
        uint64_t auxsize

    int hammer2_newfs(const char *const *paths, const uint64_t *sizes, int npaths,
                      const hammer2_newfs_t *opts)

    ctypedef struct hammer2_fsck_freemap_t:
        uint64_t referenced
        uint64_t unmarked
        uint64_t overlaps
        uint64_t allocated_bytes
        uint64_t leaked_bytes
        void (*report)(void *arg, const char *msg)
        void *arg
        int nreported

    ctypedef struct hammer2_fsck_tree_t:
        hammer2_walk_stats_t stats
        uint64_t problems
        void (*report)(void *arg, const char *msg)
        void *arg
        int nreported

    ctypedef struct hammer2_fsck_zone_t:
        hammer2_fsck_tree_t tree
        hammer2_fsck_tree_t fmtree
        hammer2_fsck_freemap_t freemap

    int hammer2_fsck_zone(hammer2_dev_t *hmp, int zone, hammer2_fsck_zone_t *r)
    void hammer2_trans_begin(hammer2_dev_t *hmp, int write)
    void hammer2_trans_end(hammer2_dev_t *hmp)
    int hammer2_flush(hammer2_dev_t *hmp)
    int hammer2_pfs_create(hammer2_dev_t **devs, int ndevs, const char *label,
                           int pfs_type, const hammer2_uuid_t *clid, int comp,
                           int check)
    int hammer2_pfs_delete(hammer2_dev_t **devs, int ndevs, const char *label)
    int hammer2_pfs_snapshot(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
                             const char *label)
    int hammer2_inode_setalgo(hammer2_pfs_t *pfs, hammer2_tid_t inum, int comp,
                              int check)
    int hammer2_dirent_destroy(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
                               const uint8_t *name, size_t len)
    int hammer2_inode_destroy(hammer2_pfs_t *pfs, hammer2_tid_t inum)
    int hammer2_bulkfree(hammer2_dev_t *hmp, uint64_t *freedp)
    int hammer2_pfs_orphans(hammer2_pfs_t *pfs, hammer2_tid_t **inumsp, size_t *countp)
    int hammer2_growfs(hammer2_dev_t *hmp, hammer2_off_t size)
    void hammer2_pfs_trans_begin(hammer2_pfs_t *pfs, int write)
    void hammer2_pfs_trans_end(hammer2_pfs_t *pfs)
    int hammer2_pfs_flush(hammer2_pfs_t *pfs)
    enum:
        HAMMER2_SPACE_GROWS
        HAMMER2_SPACE_CHANGES
    int hammer2_space_reserve(hammer2_pfs_t *pfs, uint64_t bytes, int kind)
    int hammer2_space_commit(hammer2_pfs_t *pfs)
    int hammer2_inode_create(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
                             const uint8_t *name, size_t len,
                             const hammer2_attr_t *attr, hammer2_tid_t *inump)
    int hammer2_inode_unlink(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
                             const uint8_t *name, size_t len, int isdir)
    int hammer2_inode_link(hammer2_pfs_t *pfs, hammer2_tid_t inum,
                           hammer2_tid_t dinum, const uint8_t *name, size_t len)
    int hammer2_inode_rename(hammer2_pfs_t *pfs, hammer2_tid_t sdinum,
                             const uint8_t *sname, size_t slen,
                             hammer2_tid_t tdinum, const uint8_t *tname,
                             size_t tlen, int flags)
    int hammer2_inode_setattr(hammer2_pfs_t *pfs, hammer2_tid_t inum,
                              const hammer2_attr_t *attr)
    int hammer2_file_write(hammer2_pfs_t *pfs, hammer2_tid_t inum,
                           hammer2_off_t off, const void *buf, size_t len)
    int hammer2_file_truncate(hammer2_pfs_t *pfs, hammer2_tid_t inum,
                              hammer2_off_t size)

    int hammer2_walk(hammer2_dev_t *hmp, const hammer2_blockref_t *bref,
                     hammer2_walk_cb_t cb, void *arg, hammer2_walk_stats_t *stats)
    int hammer2_walk_zone(hammer2_dev_t *hmp, int zone, int freemap,
                          hammer2_walk_cb_t cb, void *arg,
                          hammer2_walk_stats_t *stats)

DEF MAXNODES = 8
DEF MAX_ERRORS = 1000
DEF SIZE_MAX63 = (1 << 63) - 1   # sizes are 64-bit, the top bit reserved
DEF READ_CLAMP = 1 << 26    # reads asking more are first cut to the file's size


class H2Error(OSError):
    """An error from the HAMMER2 core; .errno is set, str() says where."""


class CheckError(H2Error):
    """Media failed its check code (errno EIO)."""


cdef str _text(const char *s):
    return s.decode('utf-8', 'replace')


cdef object _error(int err, str context=None):
    msg = _text(hammer2_errmsg())
    if context:
        msg = f"{context}: {msg}"
    cls = CheckError if (err == _errno.EIO and 'check mismatch' in msg) else H2Error
    return cls(err, msg)


cdef bytes _cstr(str what, value):
    """value (str or bytes) as a C string: a NUL inside would silently cut it."""
    cdef bytes b = (value.encode('utf-8', 'surrogateescape') if isinstance(value, str)
                    else bytes(value))
    if b'\0' in b:
        raise H2Error(_errno.EINVAL, f"{what} {value!r} contains NUL")
    return b


cdef object _bounded(str what, value, low, high):
    """A caller's number checked before C sees it (a bare OverflowError otherwise)."""
    if not low <= value <= high:
        raise H2Error(_errno.EINVAL, f"{what} {value} out of range ({low} to {high})")
    return value


def check_symlink(bytes target):
    """H2Error unless target can be a link target on the host (ENAMETOOLONG past
    PATH_MAX - 1 bytes, EINVAL with a NUL inside)."""
    cdef int err = hammer2_symlink_validate(<const uint8_t *><char *>target, len(target))
    if err:
        raise _error(err)


def uuid_str(bytes raw):
    """HAMMER2 uuids are stored in DCE (little-endian fields) order: the first three
    fields byte-swapped, as uuid.UUID(bytes_le=raw) reads them (without its cost, which
    a torture check listing PFSes per crash image pays thousands of times)."""
    if len(raw) != 16:
        raise ValueError(f"a uuid is 16 bytes, not {len(raw)}")
    h = (raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


cdef bytes _uuid_bytes(hammer2_uuid_t *u):
    return PyBytes_FromStringAndSize(<char *>u.bytes, 16)


cdef dict _volume_data(hammer2_volume_data_t *vd, const uint8_t *raw, int zone,
                       const char *why):
    """A header copy's fields, named as the real `hammer2 volhdr` names them."""
    return {
        'zone': zone, 'offset': zone << 31,
        'error': None if why is NULL else _text(why),
        'magic': vd.magic, 'boot_beg': vd.boot_beg, 'boot_end': vd.boot_end,
        'aux_beg': vd.aux_beg, 'aux_end': vd.aux_end, 'volu_size': vd.volu_size,
        'version': vd.version, 'flags': vd.flags, 'copyid': vd.copyid,
        'freemap_vers': vd.freemap_version, 'peer_type': vd.peer_type,
        'volu_id': vd.volu_id, 'nvolumes': vd.nvolumes,
        'fsid': uuid_str(_uuid_bytes(&vd.fsid)), 'fstype': uuid_str(_uuid_bytes(&vd.fstype)),
        'allocator_size': vd.allocator_size, 'allocator_free': vd.allocator_free,
        'allocator_beg': vd.allocator_beg, 'mirror_tid': vd.mirror_tid,
        'freemap_tid': vd.freemap_tid, 'bulkfree_tid': vd.bulkfree_tid,
        'total_size': vd.total_size,
        # (stored, computed) for each checked sector and the whole header
        'icrc_sects': {
            HAMMER2_VOL_ICRC_SECT0: (vd.icrc_sects[HAMMER2_VOL_ICRC_SECT0],
                                     hammer2_icrc32(raw, HAMMER2_VOLUME_ICRC0_SIZE)),
            HAMMER2_VOL_ICRC_SECT1: (vd.icrc_sects[HAMMER2_VOL_ICRC_SECT1],
                                     hammer2_icrc32(raw + HAMMER2_VOLUME_ICRC1_OFF,
                                                    HAMMER2_VOLUME_ICRC1_SIZE))},
        'icrc_volhdr': (vd.icrc_volheader, hammer2_icrc32(raw, HAMMER2_VOLUME_ICRCVH_SIZE)),
        'volu_loff': [vd.volu_loff[i] for i in range(min(vd.nvolumes, 64))],
    }


cdef uint32_t _unix_xid(hammer2_uuid_t *u):
    # the unix id sits in the last 4 bytes of the uuid's node field
    cdef uint32_t v
    memcpy(&v, &u.bytes[12], 4)
    return v


cdef dict _bref_dict(const hammer2_blockref_t *b):
    return {
        'type': _text(hammer2_bref_type_name(b.type)), 'type_id': b.type,
        'methods': b.methods, 'check': b.methods >> 4, 'comp': b.methods & 15,
        'copyid': b.copyid, 'keybits': b.keybits, 'vradix': b.vradix,
        'flags': b.flags, 'leaf_count': b.leaf_count, 'key': b.key,
        'mirror_tid': b.mirror_tid, 'modify_tid': b.modify_tid,
        'update_tid': b.update_tid, 'data_off_raw': b.data_off,
        'data_count': b.embed.stats.data_count, 'inode_count': b.embed.stats.inode_count,
        'data_off': b.data_off & ~(<uint64_t>0x3F),
        'bytes': (1 << (b.data_off & 0x3F)) if (b.data_off & 0x3F) else 0,
        'raw': PyBytes_FromStringAndSize(<const char *>b, 128),
    }


cdef dict _meta_dict(hammer2_inode_meta_t *m):
    return {
        'version': m.version, 'pfs_subtype': m.pfs_subtype, 'uflags': m.uflags,
        'rmajor': m.rmajor, 'rminor': m.rminor,
        'ctime_us': m.ctime, 'mtime_us': m.mtime, 'atime_us': m.atime,
        'btime_us': m.btime, 'uid': _unix_xid(&m.uid), 'gid': _unix_xid(&m.gid),
        'uid_raw': _uuid_bytes(&m.uid), 'gid_raw': _uuid_bytes(&m.gid),
        'h2type': m.type, 'op_flags': m.op_flags, 'cap_flags': m.cap_flags,
        'mode': m.mode, 'inum': m.inum, 'size': m.size, 'nlinks': m.nlinks,
        'iparent': m.iparent, 'name_key': m.name_key, 'name_len': m.name_len,
        'ncopies': m.ncopies, 'comp_algo': m.comp_algo,
        'target_type': m.target_type, 'check_algo': m.check_algo,
        'pfs_nmasters': m.pfs_nmasters, 'pfs_type': m.pfs_type,
        'pfs_inum': m.pfs_inum, 'pfs_clid': _uuid_bytes(&m.pfs_clid),
        'pfs_fsid': _uuid_bytes(&m.pfs_fsid), 'pfs_lsnap_tid': m.pfs_lsnap_tid,
    }


cdef dict _pfs_info_dict(hammer2_pfs_info_t *p):
    return {
        'label': (<bytes>p.label).decode('utf-8', 'surrogateescape'),
        'pfs_type': p.pfs_type, 'pfs_subtype': p.pfs_subtype,
        'pfs_nmasters': p.pfs_nmasters, 'clid': _uuid_bytes(&p.pfs_clid),
        'fsid': _uuid_bytes(&p.pfs_fsid), 'inum': p.inum, 'name_key': p.name_key,
    }


def check_name(int check):
    return _text(hammer2_check_name(check))


def comp_name(int comp):
    return _text(hammer2_comp_name(comp))


def inode_meta_from_bytes(bytes data):
    """Decode the meta part of a raw 1 KiB inode."""
    if len(data) < sizeof(hammer2_inode_meta_t):
        raise H2Error(_errno.EINVAL, f"an inode is {sizeof(hammer2_inode_meta_t)}+ bytes")
    return _meta_dict(<hammer2_inode_meta_t *><char *>data)


def dirent_head(bytes raw_bref):
    """inum, namlen and type of a raw DIRENT blockref."""
    cdef const hammer2_blockref_t *b = <const hammer2_blockref_t *><char *>raw_bref
    if len(raw_bref) != 128:
        raise H2Error(_errno.EINVAL, "a blockref is 128 bytes")
    return {'inum': b.embed.dirent.inum, 'namlen': b.embed.dirent.namlen,
            'type': b.embed.dirent.type}


def decode_block(bytes raw_bref, bytes data, size_t lsize=65536):
    """Verify a raw block against its blockref and decompress it, exactly
    as the read path does; returns the logical bytes (zero-padded)."""
    cdef const hammer2_blockref_t *b = <const hammer2_blockref_t *><char *>raw_bref
    cdef const char *src = data
    cdef size_t n = len(data), done = 0
    cdef bytes out
    cdef char *dst
    cdef int err
    if len(raw_bref) != 128:
        raise H2Error(_errno.EINVAL, "a blockref is 128 bytes")
    out = PyBytes_FromStringAndSize(NULL, lsize)
    dst = PyBytes_AS_STRING(out)
    with nogil:
        err = hammer2_check_verify(b, src, n)
        if err == 0:
            err = hammer2_decompress(b.methods & 15, src, n, dst, lsize, &done)
        if err == 0 and done < lsize:
            memset(dst + done, 0, lsize - done)
    if err:
        raise _error(err)
    return out


def check_set(bytes raw_bref, bytes data):
    """raw_bref with its check code recomputed over data by its own
    algorithm, as a flush sets it (a freemap blockref keeps its bigmask and
    avail, which share the check field)."""
    cdef hammer2_blockref_t b
    if len(raw_bref) != 128:
        raise H2Error(_errno.EINVAL, "a blockref is 128 bytes")
    memcpy(&b, <char *>raw_bref, 128)
    hammer2_check_set(&b, b.methods >> 4, <char *>data, len(data))
    out = PyBytes_FromStringAndSize(<char *>&b, 128)
    if b.methods >> 4 == HAMMER2_CHECK_FREEMAP:
        out = out[:68] + raw_bref[68:]
    return out


def icrc32(bytes data):
    """The iSCSI CRC32C of data (volume header CRCs, freemap check codes)."""
    return hammer2_icrc32(<char *>data, len(data))


def bmap_summary(bytes leaf):
    """Per 4 MiB segment of a raw freemap leaf: index, class, avail,
    linear and allocated 16 KiB granules."""
    cdef const hammer2_bmap_data_t *bm = <const hammer2_bmap_data_t *><char *>leaf
    cdef int n = len(leaf) // sizeof(hammer2_bmap_data_t)
    out = []
    for i in range(n):
        used = 0
        for w in range(8):
            v = bm[i].bitmapq[w]
            for g in range(32):
                used += ((v >> (g * 2)) & 3) != 0
        out.append({'index': i, 'class': bm[i].class_, 'avail': bm[i].avail,
                    'linear': bm[i].linear, 'used': used})
    return out


def dirhash(bytes name):
    return hammer2_dirhash(<const uint8_t *><char *>name, len(name))


MAX_VOLUMES = HAMMER2_MAX_VOLUMES


cdef list _volume_list(path):
    """One path, or a list of 1..HAMMER2_MAX_VOLUMES, as bytes."""
    paths = [path] if isinstance(path, (str, bytes)) else list(path)
    if not 1 <= len(paths) <= HAMMER2_MAX_VOLUMES:
        raise H2Error(_errno.EINVAL, f"a filesystem has 1 to {HAMMER2_MAX_VOLUMES} "
                                     f"volumes, not {len(paths)}")
    return [_cstr("path", p) for p in paths]


cdef extern from "hammer2_cluster.h" nogil:
    ctypedef struct hammer2_nodeset_t:
        hammer2_dev_t *devs[8]
        int ndevs
    int hammer2_nodeset_pfs_open(hammer2_nodeset_t *ns, const char *label,
                                 hammer2_pfs_t **pfsp)
    void hammer2_nodeset_pfs_close(hammer2_nodeset_t *ns, hammer2_pfs_t *pfs)


cdef class Device:
    """One opened HAMMER2 device or image file (or the volumes of one
    filesystem); or, once a NodeSet took it over, a view of a node of an open
    cluster (whatever device serves the node now: the cluster may reopen it)."""
    cdef hammer2_dev_t *hmp
    cdef hammer2_nodeset_t *ns     # the set owning the node, if a view
    cdef int index
    cdef object users          # PFSes opened over this device
    cdef object __weakref__

    def __cinit__(self, path, bint writable=False):
        """path: one image or device, or the list of a filesystem's volumes."""
        cdef list bpaths = _volume_list(path)
        cdef const char *cpaths[HAMMER2_MAX_VOLUMES]
        cdef int flags = 1 if writable else 0
        cdef int n = len(bpaths), err, i
        self.users = _weakref.WeakSet()
        for i in range(n):
            cpaths[i] = bpaths[i]
        with nogil:
            err = hammer2_dev_open(cpaths, n, flags, &self.hmp)
        if err:
            raise _error(err)

    def __dealloc__(self):
        if self.hmp is not NULL and self.ns is NULL:
            hammer2_dev_close(self.hmp)
            self.hmp = NULL

    cdef hammer2_dev_t *_dev(self) except NULL:
        if self.ns is not NULL:
            return self.ns.devs[self.index]
        if self.hmp is NULL:
            raise H2Error(_errno.EBADF, "device is closed")
        return self.hmp

    cdef hammer2_dev_t *_wdev(self) except NULL:
        """The device, for a write transaction: refused when opened read-only."""
        cdef hammer2_dev_t *hmp = self._dev()
        if hmp.readonly:
            raise H2Error(_errno.EROFS, f"{_text(hmp.path)} is open read-only")
        return hmp

    def close(self):
        """Close the device and, first, every PFS opened over it (a view
        leaves the device to its NodeSet)."""
        for pfs in list(self.users):
            pfs.close()
        if self.hmp is not NULL and self.ns is NULL:
            hammer2_dev_close(self.hmp)
        self.hmp = NULL
        self.ns = NULL

    @property
    def path(self):
        return _text(self._dev().path)

    @property
    def size(self):
        return self._dev().size

    @property
    def best_zone(self):
        return self._dev().volhdrno

    @property
    def warnings(self):
        w = self._dev().warnings
        return [] if w is NULL else _text(w).splitlines()

    def volume_headers(self):
        cdef hammer2_dev_t *hmp = self._dev()
        cdef hammer2_volhdr_info_t *vh
        out = []
        for zone in range(4):
            vh = &hmp.vh[zone]
            if not vh.present:
                break
            out.append({
                'zone': zone, 'offset': zone << 31, 'valid': bool(vh.valid),
                'error': None if vh.valid else _text(vh.error),
                'mirror_tid': vh.mirror_tid, 'freemap_tid': vh.freemap_tid,
                'volu_size': vh.volu_size, 'version': vh.version,
                'total_size': vh.total_size, 'allocator_size': vh.allocator_size,
                'allocator_free': vh.allocator_free,
                'best': zone == hmp.volhdrno,
            })
        return out

    def volume_header_copies(self):
        """Every volume's header copies as they are on its device (the root
        volume's live ones and each other volume's own): one list of dicts
        per volume, in volume id order; sector CRCs stored and computed."""
        cdef hammer2_dev_t *hmp = self._dev()
        cdef hammer2_volume_data_t *vd = <hammer2_volume_data_t *>malloc(65536)
        cdef const char *why = NULL
        cdef const uint8_t *raw = <const uint8_t *>vd
        cdef int err
        if vd is NULL:
            raise MemoryError()
        vols = []
        try:
            for vid in range(hmp.nvols):
                copies = []
                for zone in range(4):
                    with nogil:
                        err = hammer2_volset_header_copy(hmp, vid, zone, vd, &why)
                    if err == _errno.ENOENT:
                        break
                    if err:
                        raise _error(err)
                    copies.append(_volume_data(vd, raw, zone, why))
                vols.append({'path': _text(hmp.vols[vid].path), 'copies': copies})
        finally:
            free(vd)
        return vols

    def flush(self):
        """Commit this device's pending modifications."""
        cdef hammer2_dev_t *hmp = self._wdev()
        cdef int err
        with nogil:
            hammer2_trans_begin(hmp, 1)
            err = hammer2_flush(hmp)
            hammer2_trans_end(hmp)
        if err:
            raise _error(err)

    def open_pfs(self):
        """PFSes currently open over this device."""
        return list(self.users)

    # ------------------------------------------------ test faults, write log

    FAULTS = {"read": 1, "write": 2, "corrupt": 3, "disconnect": 4, "enospc": 5, "slow": 6}

    def inject_fault(self, str kind, uint64_t after=0, double probability=1.0,
                     uint64_t limit=0, uint64_t seed=0, uint32_t delay_ms=0):
        """Arm a fault: after `after` matching I/Os, each later one is hit with
        `probability`, at most `limit` times (0: no limit). Replaces any armed one.
        "slow": a hit read takes `delay_ms` longer, and succeeds."""
        cdef hammer2_fault_t f
        if kind not in self.FAULTS:
            raise H2Error(_errno.EINVAL, f"unknown fault '{kind}' (one of {', '.join(self.FAULTS)})")
        if not 0.0 < probability <= 1.0:
            raise H2Error(_errno.EINVAL, f"fault probability {probability} not in (0, 1]")
        memset(&f, 0, sizeof(f))
        f.kind = self.FAULTS[kind]
        f.after = after
        f.ppm = <uint32_t>(probability * 1000000)
        f.limit = limit
        f.seed = seed
        f.delay_ms = delay_ms
        hammer2_dev_fault(self._dev(), &f)

    def clear_fault(self):
        """Disarm; returns how many times the armed fault fired, counted in the same step
        (an I/O racing a separate read of faults_injected would go uncounted)."""
        return hammer2_dev_fault(self._dev(), NULL)

    @property
    def faults_injected(self):
        return hammer2_dev_faults_injected(self._dev())

    def record(self, bint on):
        """Start (or stop) logging every device write and flush barrier."""
        hammer2_dev_record(self._dev(), on)

    def take_record(self):
        """The log since the last take: ("write", volume, offset in it, data) and
        ("sync", None, None, None)."""
        cdef size_t count = 0
        cdef int overflow = 0
        cdef hammer2_devrec_ent_t *ents = hammer2_dev_record_take(self._dev(), &count, &overflow)
        try:
            if overflow:
                raise H2Error(_errno.ENOMEM, "write log incomplete: out of memory")
            return [("write", ents[i].vol, ents[i].off,
                     PyBytes_FromStringAndSize(<char *>ents[i].data, ents[i].bytes))
                    if ents[i].op == 1 else ("sync", None, None, None) for i in range(count)]
        finally:
            hammer2_devrec_free(ents, count)

    def bulkfree(self):
        """Free what nothing references; returns the bytes freed."""
        cdef hammer2_dev_t *hmp = self._wdev()
        cdef uint64_t freed = 0
        cdef int err
        with nogil:
            hammer2_trans_begin(hmp, 1)
            err = hammer2_bulkfree(hmp, &freed)
            hammer2_trans_end(hmp)
        if err:
            raise _error(err)
        return freed

    def growfs(self, size):
        cdef hammer2_dev_t *hmp = self._wdev()
        cdef uint64_t csize = _bounded("size", size, 0, SIZE_MAX63)
        cdef int err
        with nogil:
            hammer2_trans_begin(hmp, 1)
            err = hammer2_growfs(hmp, csize)
            hammer2_trans_end(hmp)
        if err:
            raise _error(err)

    def fsck_zone(self, int zone):
        """fsck of header copy `zone`, one walk of each tree: every check
        code, every blockref's keys, inode, directory entry and data block,
        (on the copy in use) each PFS's namespace as reads see it, and the
        freemap against the volume tree.  Returns ((volume tree walk stats
        with 'problems', messages), (freemap tree walk stats, messages),
        (freemap counts, messages))."""
        cdef hammer2_dev_t *hmp = self._dev()
        cdef hammer2_fsck_zone_t r
        cdef list tmsgs = [], fmsgs = [], mmsgs = []
        cdef int err
        memset(&r, 0, sizeof(r))
        r.tree.report = r.fmtree.report = r.freemap.report = _report_cb
        r.tree.arg = <void *>tmsgs
        r.fmtree.arg = <void *>fmsgs
        r.freemap.arg = <void *>mmsgs
        with nogil:
            hammer2_trans_begin(hmp, 0)
            err = hammer2_fsck_zone(hmp, zone, &r)
            hammer2_trans_end(hmp)
        if err:
            raise _error(err)
        fm = r.freemap
        return ((dict(_stats_dict(&r.tree.stats), problems=r.tree.problems), tmsgs),
                (_stats_dict(&r.fmtree.stats), fmsgs),
                ({'referenced': fm.referenced, 'unmarked': fm.unmarked,
                  'overlaps': fm.overlaps, 'allocated_bytes': fm.allocated_bytes,
                  'leaked_bytes': fm.leaked_bytes}, mmsgs))

    def walk_zone(self, int zone, bint freemap=False, callback=None):
        """Walk one header copy's volume (or freemap) tree, verifying every
        check code.  callback(depth, bref, data, error) is called per
        blockref (data: bytes or None; error: message or None); a true
        return stops the walk.  Returns (stats dict, error messages)."""
        cdef _Walk w = _Walk(callback)
        cdef hammer2_dev_t *hmp = self._dev()
        cdef int err
        with nogil:
            hammer2_trans_begin(hmp, 0)
            err = hammer2_walk_zone(hmp, zone, freemap, _walk_cb, <void *>w,
                                    &w.stats)
            hammer2_trans_end(hmp)
        return w.finish(err)

    def walk_bref(self, bytes raw, callback=None):
        """Walk the subtree under one blockref (as returned in 'raw')."""
        cdef _Walk w = _Walk(callback)
        cdef hammer2_blockref_t bref
        cdef hammer2_dev_t *hmp = self._dev()
        cdef int err
        if len(raw) != 128:
            raise H2Error(_errno.EINVAL, "a blockref is 128 bytes")
        memcpy(&bref, <char *>raw, 128)
        with nogil:
            hammer2_trans_begin(hmp, 0)
            err = hammer2_walk(hmp, &bref, _walk_cb, <void *>w, &w.stats)
            hammer2_trans_end(hmp)
        return w.finish(err)


cdef class _Walk:
    cdef object callback
    cdef object exc
    cdef list errors
    cdef hammer2_walk_stats_t stats

    def __cinit__(self, callback):
        self.callback = callback
        self.exc = None
        self.errors = []

    cdef tuple finish(self, int err):
        if self.exc is not None:
            raise self.exc
        if err and not self.errors:
            raise _error(err)
        return _stats_dict(&self.stats), self.errors


cdef dict _stats_dict(hammer2_walk_stats_t *s):
    return {'total': s.total, 'inode': s.inode, 'indirect': s.indirect,
            'data': s.data, 'dirent': s.dirent,
            'freemap_node': s.freemap_node, 'freemap_leaf': s.freemap_leaf,
            'bytes': s.bytes, 'errors': s.errors}


cdef int _walk_cb(void *arg, int depth, const hammer2_blockref_t *bref,
                  const void *data, int nbytes, int error) noexcept with gil:
    cdef _Walk w = <_Walk>arg
    msg = _text(hammer2_errmsg()) if error else None
    if msg is not None and len(w.errors) < MAX_ERRORS:
        w.errors.append(msg)
    if w.callback is None:
        return 0
    try:
        payload = None if data is NULL else PyBytes_FromStringAndSize(<const char *>data, nbytes)
        return 1 if w.callback(depth, _bref_dict(bref), payload, msg) else 0
    except BaseException as e:
        w.exc = e
        return 1


cdef void _report_cb(void *arg, const char *msg) noexcept with gil:
    (<list>arg).append(_text(msg))


cdef int _devs(list devices, hammer2_dev_t **devs, bint write=False) except -1:
    if not 1 <= len(devices) <= MAXNODES:
        raise H2Error(_errno.EINVAL, f"a cluster has 1 to {MAXNODES} nodes, not {len(devices)}")
    for i, d in enumerate(devices):
        devs[i] = (<Device>d)._wdev() if write else (<Device>d)._dev()
    if write:
        _cluster_writable(devs, len(devices))
    return len(devices)


def newfs(path, size=0, str label="DATA", volhdrs=0, int comp=2,
          int check=3, int nmasters=0, bytes clid=None, aux=0):
    """Format path (a file, created or resized to size, or a device), or a list of
    volumes with a list of sizes (0: the file's or device's own); aux: the aux
    area's size (0: nominal)."""
    cdef hammer2_newfs_t o
    cdef hammer2_uuid_t uclid
    cdef list bpaths = _volume_list(path)
    cdef bytes blabel = _cstr("PFS label", label)
    cdef const char *cpaths[HAMMER2_MAX_VOLUMES]
    cdef uint64_t csizes[HAMMER2_MAX_VOLUMES]
    cdef int n = len(bpaths), err, i
    sizes = [size] if isinstance(size, int) else list(size)
    if len(sizes) != n:
        raise H2Error(_errno.EINVAL, f"{n} volumes, {len(sizes)} sizes")
    for i in range(n):
        cpaths[i] = bpaths[i]
        csizes[i] = _bounded("size", sizes[i], 0, SIZE_MAX63)
    memset(&o, 0, sizeof(o))
    o.label = blabel
    o.nvolhdrs = _bounded("volhdrs", volhdrs, 0, HAMMER2_NUM_VOLHDRS)  # 0: all
    o.comp = comp
    o.check = check
    o.nmasters = nmasters
    o.auxsize = _bounded("aux", aux, 0, SIZE_MAX63)
    if clid is not None:
        if len(clid) != 16:
            raise H2Error(_errno.EINVAL, "a cluster id is 16 bytes")
        memcpy(uclid.bytes, <char *>clid, 16)
        o.clid = &uclid
    with nogil:
        err = hammer2_newfs(cpaths, csizes, n, &o)
    if err:
        raise _error(err)


def pfs_create(list devices, str label, int pfs_type, bytes clid, int comp, int check):
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs, True)
    cdef bytes blabel = _cstr("PFS label", label)
    cdef const char *clabel = blabel
    cdef hammer2_uuid_t uclid
    cdef const hammer2_uuid_t *pclid = NULL
    cdef int err, i
    if clid is not None:
        if len(clid) != 16:
            raise H2Error(_errno.EINVAL, "a cluster id is 16 bytes")
        memcpy(uclid.bytes, <char *>clid, 16)
        pclid = &uclid
    with nogil:
        for i in range(n):
            hammer2_trans_begin(devs[i], 1)
        err = hammer2_pfs_create(devs, n, clabel, pfs_type, pclid, comp, check)
        for i in range(n):
            hammer2_trans_end(devs[i])
    if err:
        raise _error(err)


def pfs_delete(list devices, str label):
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs, True)
    cdef bytes blabel = _cstr("PFS label", label)
    cdef const char *clabel = blabel
    cdef int err, i
    with nogil:
        for i in range(n):
            hammer2_trans_begin(devs[i], 1)
        err = hammer2_pfs_delete(devs, n, clabel)
        for i in range(n):
            hammer2_trans_end(devs[i])
    if err:
        raise _error(err)


def pfs_list(list devices):
    """Every PFS under the super-root of the (first valid) node."""
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs)
    cdef hammer2_pfs_info_t *infos = NULL
    cdef int count = 0, err, i
    with nogil:
        for i in range(n):
            hammer2_trans_begin(devs[i], 0)
        err = hammer2_pfs_list(devs, n, &infos, &count)
        for i in range(n):
            hammer2_trans_end(devs[i])
    if err:
        raise _error(err)
    try:
        return [_pfs_info_dict(&infos[i]) for i in range(count)]
    finally:
        free(infos)


cdef struct dirent_vec:
    hammer2_dirent_t *ents
    size_t count
    size_t cap
    int oom


cdef int _collect_dirent(void *arg, const hammer2_dirent_t *ent) noexcept nogil:
    cdef dirent_vec *d = <dirent_vec *>arg
    cdef hammer2_dirent_t *p
    if d.count == d.cap:
        p = <hammer2_dirent_t *>realloc(d.ents, (d.cap * 2 + 64) * sizeof(hammer2_dirent_t))
        if p is NULL:
            d.oom = 1
            return 1
        d.ents = p
        d.cap = d.cap * 2 + 64
    memcpy(&d.ents[d.count], ent, sizeof(hammer2_dirent_t))
    d.count += 1
    return 0


cdef class Pfs:
    """One PFS, over one or more nodes (devices)."""
    cdef hammer2_pfs_t *pfs
    cdef hammer2_nodeset_t *ns     # opened over a NodeSet's nodes
    cdef list devices
    cdef readonly dict info
    cdef object sessions       # FUSE sessions serving this PFS
    cdef object __weakref__

    def __cinit__(self, list devices, str label):
        cdef hammer2_dev_t *devs[MAXNODES]
        cdef int n = _devs(devices, devs)
        cdef bytes blabel = _cstr("PFS label", label)
        cdef const char *clabel = blabel
        cdef int err, i
        self.sessions = _weakref.WeakSet()
        self.ns = (<Device>devices[0]).ns     # the whole cluster, not one node's view
        if self.ns is not NULL and self.ns.ndevs != n:
            self.ns = NULL
        with nogil:
            if self.ns is not NULL:
                err = hammer2_nodeset_pfs_open(self.ns, clabel, &self.pfs)
            else:
                for i in range(n):
                    hammer2_trans_begin(devs[i], 0)
                err = hammer2_pfs_open(devs, n, clabel, &self.pfs)
                for i in range(n):
                    hammer2_trans_end(devs[i])
        if err:
            raise _error(err)
        self.devices = devices
        for d in devices:
            (<Device>d).users.add(self)
        self.info = _pfs_info_dict(&self.pfs.info)

    def __dealloc__(self):
        self._release()

    cdef _release(self):
        if self.pfs is NULL:
            return
        if self.ns is not NULL:
            hammer2_nodeset_pfs_close(self.ns, self.pfs)
        else:
            hammer2_pfs_close(self.pfs)
        self.pfs = NULL

    def close(self):
        """Close the PFS and, first, the FUSE sessions over it (EBUSY while
        one still serves: the PFS stays open)."""
        for s in list(self.sessions):
            s.close()
        if self.pfs is not NULL:
            self._release()
            for d in self.devices:
                (<Device>d).users.discard(self)

    cdef hammer2_pfs_t *_pfs(self) except NULL:
        if self.pfs is NULL:
            raise H2Error(_errno.EBADF, "PFS is closed")
        return self.pfs

    cdef hammer2_pfs_t *_wpfs(self) except NULL:
        """The PFS, for a write transaction: every node must be writable."""
        cdef hammer2_pfs_t *pfs = self._pfs()
        for d in self.devices:
            (<Device>d)._wdev()
        _cluster_writable(pfs.devs, pfs.ndevs)
        return pfs

    @property
    def root_inum(self):
        return self._pfs().info.inum

    def inode(self, uint64_t inum):
        """(inode meta dict, blockref dict) of an inode; the meta dict also holds
        data_bytes, the media bytes its data took at the last commit."""
        cdef hammer2_inode_meta_t meta
        cdef hammer2_blockref_t bref
        cdef hammer2_pfs_t *pfs = self._pfs()
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 0)
            err = hammer2_inode_meta(pfs, inum, &meta, &bref)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
        d = _meta_dict(&meta)
        d['data_bytes'] = hammer2_inode_data_bytes(&meta, &bref)
        return d, _bref_dict(&bref)

    def lookup(self, uint64_t dinum, bytes name):
        """(inum, h2type) of name in directory dinum."""
        cdef hammer2_dirent_t ent
        cdef const uint8_t *cname = <const uint8_t *><char *>name
        cdef size_t n = len(name)
        cdef hammer2_pfs_t *pfs = self._pfs()
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 0)
            err = hammer2_dir_lookup(pfs, dinum, cname, n, &ent)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
        return ent.inum, ent.type

    def readdir(self, uint64_t dinum):
        """[(name bytes, inum, h2type, key)] in hash order."""
        cdef dirent_vec d
        cdef hammer2_pfs_t *pfs = self._pfs()
        cdef int err
        d.ents = NULL
        d.count = d.cap = 0
        d.oom = 0
        try:
            with nogil:
                hammer2_pfs_trans_begin(pfs, 0)
                err = hammer2_dir_readdir(pfs, dinum, _collect_dirent, &d)
                hammer2_pfs_trans_end(pfs)
            if err:
                raise _error(err)
            if d.oom:
                raise MemoryError("directory listing")
            return [(PyBytes_FromStringAndSize(<char *>d.ents[i].name, d.ents[i].namlen),
                     d.ents[i].inum, d.ents[i].type, d.ents[i].key)
                    for i in range(d.count)]
        finally:
            free(d.ents)

    def readinto(self, uint64_t inum, uint64_t offset, unsigned char[::1] buf):
        """Fill buf from offset; returns the byte count (short at EOF)."""
        cdef hammer2_pfs_t *pfs = self._pfs()
        cdef size_t done = 0, size = buf.shape[0]
        cdef void *p = &buf[0] if size else NULL
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 0)
            err = hammer2_file_read(pfs, inum, offset, p, size, &done)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
        return done

    def read(self, uint64_t inum, uint64_t offset, size_t size):
        """Up to size bytes at offset (short only at end of file)."""
        cdef hammer2_pfs_t *pfs = self._pfs()
        cdef bytes out
        cdef char *buf
        cdef size_t done = 0
        cdef int err
        if size > READ_CLAMP:       # what the file holds, not what was asked, is allocated
            size = min(size, max(0, self.inode(inum)[0]["size"] - offset))
        if size > <size_t>PY_SSIZE_T_MAX:
            raise H2Error(_errno.EFBIG, f"inode 0x{inum:x}: a read of {size} bytes")
        out = PyBytes_FromStringAndSize(NULL, size)
        buf = PyBytes_AS_STRING(out)
        with nogil:
            hammer2_pfs_trans_begin(pfs, 0)
            err = hammer2_file_read(pfs, inum, offset, buf, size, &done)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
        return out if done == size else out[:done]

    def next_data(self, uint64_t inum, uint64_t offset):
        """The first offset at or after offset holding data (as SEEK_DATA), the
        file size when only holes follow."""
        cdef hammer2_pfs_t *pfs = self._pfs()
        cdef hammer2_off_t data = 0
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 0)
            err = hammer2_file_next_data(pfs, inum, offset, &data)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
        return data

    def readlink(self, uint64_t inum):
        """A symlink's target (bytes), checked: bounded, no NUL inside."""
        cdef hammer2_pfs_t *pfs = self._pfs()
        cdef char buf[HAMMER2_SYMLINK_MAX + 1]
        cdef size_t n = 0
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 0)
            err = hammer2_file_readlink(pfs, inum, buf, &n)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
        return PyBytes_FromStringAndSize(buf, n)

    # ------------------------------------------------------------ writes
    # Each modification is its own write transaction; flush() commits.

    def create(self, uint64_t dinum, bytes name, int h2type, uint32_t mode,
               uint32_t uid=0, uint32_t gid=0, mtime_us=None, atime_us=None,
               uint32_t rmajor=0, uint32_t rminor=0):
        """Create name in directory dinum; returns the new inode number."""
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef hammer2_attr_t attr
        cdef const uint8_t *cname = <const uint8_t *><char *>name
        cdef size_t n = len(name)
        cdef uint64_t inum = 0
        cdef int err
        memset(&attr, 0, sizeof(attr))
        attr.type = h2type
        attr.mode = mode
        attr.uid = uid
        attr.gid = gid
        attr.rmajor = rmajor
        attr.rminor = rminor
        if mtime_us is not None:
            attr.mask |= 0x10
            attr.mtime = mtime_us
        if atime_us is not None:
            attr.mask |= 0x08
            attr.atime = atime_us
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_reserve(pfs, 0, HAMMER2_SPACE_GROWS)
            if err == 0:
                err = hammer2_inode_create(pfs, dinum, cname, n, &attr, &inum)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
        return inum

    def unlink(self, uint64_t dinum, bytes name, int isdir=-1):
        """Remove name; isdir 1: must be an (empty) directory, 0: must not."""
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef const uint8_t *cname = <const uint8_t *><char *>name
        cdef size_t n = len(name)
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_reserve(pfs, 0, HAMMER2_SPACE_CHANGES)
            if err == 0:
                err = hammer2_inode_unlink(pfs, dinum, cname, n, isdir)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)

    def link(self, uint64_t inum, uint64_t dinum, bytes name):
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef const uint8_t *cname = <const uint8_t *><char *>name
        cdef size_t n = len(name)
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_reserve(pfs, 0, HAMMER2_SPACE_CHANGES)
            if err == 0:
                err = hammer2_inode_link(pfs, inum, dinum, cname, n)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)

    def rename(self, uint64_t sdinum, bytes sname, uint64_t tdinum, bytes tname,
               bint noreplace=False):
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef const uint8_t *cs = <const uint8_t *><char *>sname
        cdef const uint8_t *ct = <const uint8_t *><char *>tname
        cdef size_t ns = len(sname), nt = len(tname)
        cdef int flags = 1 if noreplace else 0
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_reserve(pfs, 0, HAMMER2_SPACE_CHANGES)
            if err == 0:
                err = hammer2_inode_rename(pfs, sdinum, cs, ns, tdinum, ct, nt, flags)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)

    def setattr(self, uint64_t inum, mode=None, uid=None, gid=None,
                atime_us=None, mtime_us=None):
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef hammer2_attr_t attr
        cdef int err
        memset(&attr, 0, sizeof(attr))
        for bit, value, field in ((0x01, mode, 'mode'), (0x02, uid, 'uid'),
                                  (0x04, gid, 'gid'), (0x08, atime_us, 'atime'),
                                  (0x10, mtime_us, 'mtime')):
            if value is None:
                continue
            attr.mask |= bit
            if field == 'mode':
                attr.mode = value
            elif field == 'uid':
                attr.uid = value
            elif field == 'gid':
                attr.gid = value
            elif field == 'atime':
                attr.atime = value
            else:
                attr.mtime = value
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_reserve(pfs, 0, HAMMER2_SPACE_CHANGES)
            if err == 0:
                err = hammer2_inode_setattr(pfs, inum, &attr)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)

    def write(self, uint64_t inum, uint64_t offset, const unsigned char[::1] data):
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef size_t n = data.shape[0]
        cdef const void *p = &data[0] if n else NULL
        cdef int err
        if n == 0:
            return 0
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_reserve(pfs, n, HAMMER2_SPACE_GROWS)
            if err == 0:
                err = hammer2_file_write(pfs, inum, offset, p, n)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
        return n

    def truncate(self, uint64_t inum, uint64_t size):
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_reserve(pfs, 0, HAMMER2_SPACE_CHANGES)
            if err == 0:
                err = hammer2_file_truncate(pfs, inum, size)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)

    def flush(self):
        """Commit everything modified so far on every node."""
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_commit(pfs)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)

    # ----------------------------------------------------- administration

    def snapshot(self, str label, uint64_t dinum=0):
        """Snapshot this (flushed) PFS, or its directory dinum, as label."""
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef bytes blabel = _cstr("PFS label", label)
        cdef const char *clabel = blabel
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_reserve(pfs, 0, HAMMER2_SPACE_GROWS)
            if err == 0:
                err = hammer2_pfs_snapshot(pfs, dinum or pfs.info.inum, clabel)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)

    def setalgo(self, uint64_t inum, int comp=-1, int check=-1):
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_space_reserve(pfs, 0, HAMMER2_SPACE_CHANGES)
            if err == 0:
                err = hammer2_inode_setalgo(pfs, inum, comp, check)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)

    def destroy_dirent(self, uint64_t dinum, bytes name):
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef const uint8_t *cname = <const uint8_t *><char *>name
        cdef size_t n = len(name)
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_dirent_destroy(pfs, dinum, cname, n)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)

    def orphans(self):
        """Inode numbers of the non-directories with no name left (nlinks 0)."""
        cdef hammer2_pfs_t *pfs = self._pfs()
        cdef hammer2_tid_t *inums = NULL
        cdef size_t count = 0
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 0)
            err = hammer2_pfs_orphans(pfs, &inums, &count)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
        try:
            return [inums[i] for i in range(count)]
        finally:
            free(inums)

    def destroy_inum(self, uint64_t inum):
        cdef hammer2_pfs_t *pfs = self._wpfs()
        cdef int err
        with nogil:
            hammer2_pfs_trans_begin(pfs, 1)
            err = hammer2_inode_destroy(pfs, inum)
            hammer2_pfs_trans_end(pfs)
        if err:
            raise _error(err)
include "_devices.pxi"
include "_cluster.pxi"
include "_fuse.pxi"
include "_torture.pxi"
include "_digest.pxi"
include "_xport.pxi"
