# Tree digests (csrc/hammer2_digest.c) and path resolution in one call
# (csrc/hammer2_namei.c): what the torture checks a volume with.

cdef extern from "hammer2.h" nogil:
    ctypedef struct hammer2_digest_ent_t:
        size_t path_off
        size_t path_len
        size_t target_off
        size_t target_len
        hammer2_tid_t inum
        uint64_t size
        uint64_t mtime
        uint64_t nlinks
        uint64_t digest
        uint32_t mode
        uint32_t uid
        uint32_t gid
        uint8_t type

    ctypedef struct hammer2_digest_tree_t:
        hammer2_digest_ent_t *ents
        size_t count
        char *arena

    ctypedef struct hammer2_digest_limits_t:
        size_t max_entries
        size_t max_arena
        uint64_t max_bytes

    int hammer2_digest_tree(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
                            const hammer2_digest_limits_t *lim, hammer2_digest_tree_t *tree)
    void hammer2_digest_tree_free(hammer2_digest_tree_t *tree)
    uint64_t hammer2_digest_bytes(const void *data, size_t len)
    int hammer2_namei(hammer2_pfs_t *pfs, const char *path, size_t len, hammer2_tid_t *inump)

def digest(const unsigned char[::1] data):
    """XXH3-64 of data: what digest_tree records for a file holding it."""
    cdef size_t n = data.shape[0]
    cdef const void *p = &data[0] if n else NULL
    cdef uint64_t h
    with nogil:
        h = hammer2_digest_bytes(p, n)
    return h


def digest_tree(Pfs pfs, uint64_t dinum=0, size_t max_entries=1 << 20,
                size_t max_arena=64 << 20, uint64_t max_bytes=1 << 34):
    """{path: (type, mode, uid, gid, size, nlinks, data, mtime_us, inum)} for every entry
    below directory dinum (default: the root), paths relative to it ("/a/b"); type is the
    HAMMER2 object type, data a file's digest() (holes read as zeros), a symlink's target
    (str), else None. Bounded by the limits (E2BIG, EFBIG) and by depth (ELOOP)."""
    cdef hammer2_pfs_t *p = pfs._pfs()
    cdef hammer2_digest_limits_t lim
    cdef hammer2_digest_tree_t tree
    cdef hammer2_digest_ent_t *e
    cdef size_t i
    cdef int err
    lim.max_entries, lim.max_arena, lim.max_bytes = max_entries, max_arena, max_bytes
    if dinum == 0:
        dinum = p.info.inum
    with nogil:
        hammer2_pfs_trans_begin(p, 0)
        err = hammer2_digest_tree(p, dinum, &lim, &tree)
        hammer2_pfs_trans_end(p)
    if err:
        raise _error(err)
    try:
        out = {}
        for i in range(tree.count):
            e = &tree.ents[i]
            if e.type == 2:
                data = e.digest
            elif e.type == 7:
                data = tree.arena[e.target_off:e.target_off + e.target_len].decode(
                    'utf-8', 'surrogateescape')
            else:
                data = None
            path = tree.arena[e.path_off:e.path_off + e.path_len].decode(
                'utf-8', 'surrogateescape')
            out[path] = (e.type, e.mode, e.uid, e.gid, e.size, e.nlinks, data, e.mtime,
                         e.inum)
        return out
    finally:
        hammer2_digest_tree_free(&tree)


def namei(Pfs pfs, bytes path):
    """The inode number of an absolute path (each name looked up in the core)."""
    cdef hammer2_pfs_t *p = pfs._pfs()
    cdef const char *cpath = path
    cdef size_t n = len(path)
    cdef hammer2_tid_t inum = 0
    cdef int err
    with nogil:
        hammer2_pfs_trans_begin(p, 0)
        err = hammer2_namei(p, cpath, n, &inum)
        hammer2_pfs_trans_end(p)
    if err:
        raise _error(err)
    return inum
