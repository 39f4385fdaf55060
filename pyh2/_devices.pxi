# Device backends (csrc/hammer2_backend.h): memory devices for tests, and
# the DIO layer's batched asynchronous reads.

cdef extern from "hammer2_backend.h" nogil:
    int hammer2_mem_create(const char *name, uint64_t size)
    int hammer2_mem_create_from(const char *name, const char *path)
    int hammer2_mem_delete(const char *name)


def mem_create(str name, uint64_t size):
    """Create the memory device `mem:NAME` (zeroed, `size` bytes)."""
    cdef bytes bname = name.encode()
    cdef const char *cname = bname
    cdef int err
    with nogil:
        err = hammer2_mem_create(cname, size)
    if err:
        raise _error(err)


def mem_create_from(str name, str path):
    """Create `mem:NAME` holding the image file's contents, copy-on-write: the
    file is never written, and must not change while the device lives."""
    cdef bytes bname = _cstr("name", name), bpath = _cstr("path", path)
    cdef const char *cname = bname
    cdef const char *cpath = bpath
    cdef int err
    with nogil:
        err = hammer2_mem_create_from(cname, cpath)
    if err:
        raise _error(err)


def mem_delete(str name):
    """Forget `mem:NAME`; its memory goes when the last open of it closes."""
    cdef bytes bname = name.encode()
    cdef const char *cname = bname
    cdef int err
    with nogil:
        err = hammer2_mem_delete(cname)
    if err:
        raise _error(err)


cdef extern from "hammer2.h" nogil:
    int hammer2_io_readmany(hammer2_dev_t *hmp, const uint64_t *offs, size_t count,
                            int qdepth)
    void hammer2_io_purge(hammer2_dev_t *hmp)
    uint64_t hammer2_io_nreads(hammer2_dev_t *hmp)
    uint64_t hammer2_io_nwrites(hammer2_dev_t *hmp)
    size_t hammer2_direct_set_min(size_t nbytes)


def dio_readmany(Device dev, offsets, int qdepth=8):
    """Load the 64 KiB buffers holding `offsets` through the asynchronous
    DIO path, at most `qdepth` in flight; the first error is raised."""
    cdef hammer2_dev_t *hmp = dev._dev()
    cdef size_t n = len(offsets), i
    cdef uint64_t *offs = <uint64_t *>malloc(max(n, 1) * sizeof(uint64_t))
    cdef int err
    if offs is NULL:
        raise MemoryError()
    try:
        for i in range(n):
            offs[i] = offsets[i]
        with nogil:
            err = hammer2_io_readmany(hmp, offs, n, qdepth)
    finally:
        free(offs)
    if err:
        raise _error(err)


def dio_purge(Device dev):
    """Drop the device's idle cached buffers (the next reads hit the device)."""
    cdef hammer2_dev_t *hmp = dev._dev()
    with nogil:
        hammer2_io_purge(hmp)


def dio_reads(Device dev):
    """Buffers loaded from the device since it was opened."""
    return hammer2_io_nreads(dev._dev())


def dio_writes(Device dev):
    """Write requests sent to the device since it was opened (a run of
    neighbouring blocks goes in one)."""
    return hammer2_io_nwrites(dev._dev())


def direct_read_min(size_t nbytes):
    """Reads of nbytes or more take uncompressed blocks straight from the
    device, bypassing the cache (process-wide); returns the old threshold."""
    return hammer2_direct_set_min(nbytes)


cdef extern from "hammer2_backend.h" nogil:
    ctypedef struct hammer2_backend_t:
        pass
    int hammer2_backend_open(const char *uri, int flags, hammer2_backend_t **bep)
    void hammer2_backend_close(hammer2_backend_t *be)
    int hammer2_backend_trim(hammer2_backend_t *be, uint64_t off, uint64_t length)


def backend_trim(str uri, uint64_t offset, uint64_t length):
    """Discard [offset, offset + length) of the device at uri (it reads back as
    zeros where the backend supports discarding; a no-op elsewhere)."""
    cdef bytes buri = uri.encode()
    cdef const char *curi = buri
    cdef hammer2_backend_t *be
    cdef int err
    with nogil:
        err = hammer2_backend_open(curi, 1, &be)
        if err == 0:
            err = hammer2_backend_trim(be, offset, length)
            hammer2_backend_close(be)
    if err:
        raise _error(err)
