# Whole-tree export and import (csrc/hammer2_xport.h): one call each, the GIL
# released for the whole tree.

import os as _os

cdef extern from "hammer2_xport.h" nogil:
    ctypedef struct hammer2_import_stats_t:
        uint64_t files
        uint64_t bytes
    int hammer2_export(hammer2_pfs_t *pfs, uint64_t inum, const char *dest,
                       uint64_t *countp)
    int hammer2_import(hammer2_pfs_t *pfs, const char *src, uint64_t dinum,
                       uint64_t flush_every, hammer2_import_stats_t *st)

cdef extern from "hammer2.h" nogil:
    int hammer2_encode_set_parallel(int on)


def export_tree(Pfs core, uint64_t inum, dest):
    """Copy the tree under directory inum to the existing host directory dest;
    returns the entry count."""
    cdef hammer2_pfs_t *pfs = core._pfs()
    cdef bytes bdest = _cstr("destination", _os.fsencode(dest))
    cdef const char *cdest = bdest
    cdef uint64_t count = 0
    cdef int err
    with nogil:
        err = hammer2_export(pfs, inum, cdest, &count)
    if err:
        raise _error(err)
    return count


def import_tree(Pfs core, src, uint64_t dinum, uint64_t flush_every):
    """Copy the host tree src into directory dinum; returns (files, bytes)."""
    cdef hammer2_pfs_t *pfs = core._wpfs()
    cdef bytes bsrc = _cstr("source", _os.fsencode(src))
    cdef const char *csrc = bsrc
    cdef hammer2_import_stats_t st
    cdef int err
    with nogil:
        err = hammer2_import(pfs, csrc, dinum, flush_every, &st)
    if err:
        raise _error(err)
    return st.files, st.bytes


def encode_parallel(bint on):
    """Flushes encode data blocks on a small thread pool (on, the default) or on
    the flushing thread alone (tests compare the two); returns the old setting."""
    return bool(hammer2_encode_set_parallel(on))
