# FUSE mounts (csrc/hammer2_fuse.c): included at the end of _core.pyx.

cdef extern from "hammer2_fuse.h" nogil:
    ctypedef struct hammer2_fuse_t:
        pass
    int hammer2_fuse_mount(hammer2_pfs_t *pfs, const char *mountpoint,
                           const char *fsname, const char *options, int flags,
                           int flush_secs, hammer2_fuse_t **fusep)
    int hammer2_fuse_loop(hammer2_fuse_t *fuse, int max_threads)
    int hammer2_fuse_close(hammer2_fuse_t *fuse)


cdef class FuseSession:
    """A PFS mounted through the kernel's FUSE.  serve() answers requests
    (in C, GIL released, up to max_threads workers) until the mount goes
    away; close() then ends the session with a final flush.  Closing the
    Pfs closes the session first (EBUSY while it serves)."""
    cdef hammer2_fuse_t *fuse
    cdef Pfs pfs
    cdef bint serving
    cdef readonly str mountpoint
    cdef object __weakref__

    def __cinit__(self, Pfs pfs, str mountpoint, str fsname, bint readonly=False,
                  str options="", bint debug=False, int flush_secs=5):
        cdef hammer2_pfs_t *p = pfs._pfs() if readonly else pfs._wpfs()
        cdef bytes bmnt = mountpoint.encode()
        cdef bytes bname = fsname.encode()
        cdef bytes bopts = options.encode()
        cdef const char *cmnt = bmnt
        cdef const char *cname = bname
        cdef const char *copts = bopts
        cdef int flags = (1 if readonly else 0) | (2 if debug else 0)
        cdef int err
        with nogil:
            err = hammer2_fuse_mount(p, cmnt, cname, copts, flags, flush_secs, &self.fuse)
        if err:
            raise _error(err)
        self.pfs = pfs
        self.mountpoint = mountpoint
        pfs.sessions.add(self)

    def __dealloc__(self):
        if self.fuse is not NULL and not self.serving:
            hammer2_fuse_close(self.fuse)

    def serve(self, int max_threads=8):
        cdef hammer2_fuse_t *f = self.fuse
        cdef int err
        if f is NULL:
            raise H2Error(_errno.EBADF, f"{self.mountpoint}: FUSE session is closed")
        if self.serving:
            raise H2Error(_errno.EBUSY, f"{self.mountpoint}: already serving")
        self.serving = True
        try:
            with nogil:
                err = hammer2_fuse_loop(f, max_threads)
        finally:
            self.serving = False
        if err:
            raise _error(err, self.mountpoint)

    def close(self):
        """Unmount if still mounted, flush, free the session."""
        cdef hammer2_fuse_t *f = self.fuse
        cdef int err
        if f is NULL:
            return
        if self.serving:
            raise H2Error(_errno.EBUSY, f"{self.mountpoint}: still serving; unmount first")
        self.fuse = NULL
        self.pfs.sessions.discard(self)
        with nogil:
            err = hammer2_fuse_close(f)
        if err:
            raise _error(err, self.mountpoint)
